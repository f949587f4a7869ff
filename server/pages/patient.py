"""/j/{token}: the patient's branded door."""

from __future__ import annotations

from aiohttp import web

from server.clinic import enrollments
from server.clinic.groups import brand_of, get_group
from server.clinic.patients import get_patient
from server.pages.render import render
from server.services import services


async def join_page(request: web.Request) -> web.Response:
    svc = services(request)
    token = request.match_info["token"]
    found = svc.links.read(token)
    enrollment = await enrollments.get_enrollment(svc.redis, found[0]) if found else None
    group = await get_group(svc.redis, enrollment["group_id"]) if enrollment else None
    if (found is None or enrollment is None or group is None
            or not enrollments.usable(enrollment, group, found[1], svc.clock.now())):
        return render(request, "link_invalid.html", {}, status=404)
    patient = await get_patient(svc.redis, enrollment["patient_id"])
    return render(request, "join.html", {
        "brand": brand_of(group),
        "group_name": group["name"],
        "display_name": patient["display_name"] if patient else "",
        "token": token,
    })
