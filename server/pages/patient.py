"""/j/{token}: the patient's branded door, and /j/{token}/calendar.ics: their group's schedule."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from server import validation as v
from server.api.common import json_response, read_json
from server.clinic import enrollments
from server.clinic.calendar import describe_schedule, ics_feed
from server.clinic.groups import brand_of, get_group, next_meeting
from server.clinic.patients import get_patient
from server.clock import to_ms
from server.errors import ApiError, ErrorCode
from server.measures import feedback as session_feedback
from server.measures.instruments import ATTRIBUTION
from server.pages.render import render
from server.requests import same_origin
from server.services import services


async def _group_of(request: web.Request) -> tuple[dict[str, Any] | None, dict[str, Any] | None, bool]:
    """The enrolment and group a link names (if it was ever genuine), and whether it works now."""
    svc = services(request)
    found = svc.links.read(request.match_info["token"])
    enrollment = await enrollments.get_enrollment(svc.redis, found[0]) if found else None
    group = await get_group(svc.redis, enrollment["group_id"]) if enrollment else None
    usable = (found is not None and enrollment is not None and group is not None
              and enrollments.usable(enrollment, group, found[1], svc.clock.now()))
    return enrollment, group, usable


async def _enrolment_of(request: web.Request) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The usable enrolment and group behind the link's token, or None for a bad or old link."""
    enrollment, group, usable = await _group_of(request)
    if not usable or enrollment is None or group is None:
        return None
    return enrollment, group


async def _link_invalid(request: web.Request) -> web.Response:
    # A rotated or expired link was genuine (its signature holds): show its clinic's brand and
    # phone. A forged one learns nothing.
    _, group, _ = await _group_of(request)
    return render(request, "link_invalid.html", {"brand": brand_of(group) if group else None}, status=404)


async def join_page(request: web.Request) -> web.Response:
    svc = services(request)
    found = await _enrolment_of(request)
    if found is None:
        return await _link_invalid(request)
    enrollment, group = found
    patient = await get_patient(svc.redis, enrollment["patient_id"])
    token = request.match_info["token"]
    return render(request, "join.html", {
        "brand": brand_of(group),
        "group_name": group["name"],
        "display_name": patient["display_name"] if patient else "",
        "patient_id": enrollment["patient_id"],  # the page's own roster id, to tell itself apart
        "token": token,
        "schedule": describe_schedule(group),
        "next_start": next_meeting(group, svc.clock.now()) or "",
        "calendar_url": f"/j/{token}/calendar.ics",
        "attribution": ATTRIBUTION,
        # A session they attended in the last day and have not rated yet: the page asks about it.
        "feedback_session_id": await session_feedback.awaiting(svc.redis, enrollment["patient_id"], group["id"],
                                                               to_ms(svc.clock.now())) or "",
        "feedback_question": session_feedback.QUESTION,
    })


async def feedback(request: web.Request) -> web.Response:
    """POST /j/{token}/feedback {"session_id","rating","comment"?}: the `feedback` frame's answer from
    the page of the link, once its socket has closed (the link is the patient's credential)."""
    svc = services(request)
    if not same_origin(request, svc.settings.public_url):
        raise ApiError(403, ErrorCode.CSRF_FAILED, "a foreign Origin")
    found = await _enrolment_of(request)
    if found is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, "this link is not valid")
    enrollment, group = found
    body = v.body_object(await read_json(request), {"session_id", "rating", "comment"})
    given = await session_feedback.submit(svc.redis, body.get("session_id"), enrollment["patient_id"], group["id"],
                                          body.get("rating"), body.get("comment"), to_ms(svc.clock.now()))
    return json_response({"type": "feedback_saved", "session_id": given.session_id})


async def calendar(request: web.Request) -> web.Response:
    svc = services(request)
    found = await _enrolment_of(request)
    if found is None:
        raise web.HTTPNotFound()
    enrollment, group = found
    join_url = svc.links.url(enrollment["id"], enrollment["link_version"])
    host = urlparse(svc.settings.public_url).hostname or "porchlight"
    body = ics_feed(group, brand_of(group), join_url, svc.clock.now(), host)
    return web.Response(text=body, content_type="text/calendar", charset="utf-8", headers={
        "Content-Disposition": 'attachment; filename="group-schedule.ics"'})
