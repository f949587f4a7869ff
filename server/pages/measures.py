"""Staff pages for measures: a patient's scores over time with their flags (facilitators of one of
the patient's groups, admins), and patients' feedback on sessions with averages (admins)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from server.api.measures import may_see_patient, patient_groups
from server.attendance import reports
from server.auth.staff import Role, all_users
from server.clinic import groups
from server.clinic.patients import all_patients, get_patient
from server.clock import to_ms
from server.measures import alerts, feedback, store, trends
from server.measures.instruments import ATTRIBUTION
from server.pages.render import render
from server.pages.staff import _base, _signed_in
from server.pages.trend_chart import trend_charts
from server.services import services


async def patient_page(request: web.Request) -> web.Response:
    staff = await _signed_in(request, Role.FACILITATOR, Role.ADMIN)
    if isinstance(staff, web.Response):
        return staff
    svc = services(request)
    patient_id = request.match_info["patient_id"]
    patient = await get_patient(svc.redis, patient_id)
    if patient is None or not await may_see_patient(svc, staff, patient_id):
        return render(request, "notice.html", {
            **_base(staff, "Not available"), "heading": "This patient is not available to you",
            "message": "You can see the measures of patients in the groups you facilitate.",
        }, status=404 if patient is None else 403)
    questionnaires = await store.questionnaires_of(svc.redis, patient_id)
    measures = sorted((m for m in (q.measure for q in questionnaires) if m is not None), key=lambda m: m.at_ms)
    group_ids = await patient_groups(svc, patient_id)
    first_group = await groups.get_group(svc.redis, group_ids[0]) if group_ids else None
    zone = ZoneInfo((first_group or {}).get("timezone") or "UTC")
    await svc.audit.append("measures.view", staff.user.id, patient_id=patient_id, rows=len(measures), format="page")
    found_alerts = [a for a in await alerts.of_groups(svc.redis, group_ids, None) if a.patient_id == patient_id]
    return render(request, "patient_measures.html", {
        **_base(staff, f"{patient['display_name']}: measures"),
        "section": "console" if staff.user.role is Role.FACILITATOR else "clinic",
        "patient": patient,
        "charts": trend_charts(measures, zone),
        "measures": [{**m.public(), "when": _local(m.at_ms, zone)} for m in reversed(measures)],
        "flags": trends.flags(questionnaires, to_ms(svc.clock.now()), await feedback.ratings_of(svc.redis, patient_id)),
        "alerts": [{**a.public(patient["display_name"]), "when": _local(a.at_ms, zone)} for a in found_alerts],
        "attribution": ATTRIBUTION,
    })


def _local(ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=zone).strftime("%a %-d %b %Y, %H:%M")


def _day(raw: str | None, default: date) -> date:
    try:
        return date.fromisoformat(raw) if raw else default
    except ValueError:
        return default


async def admin_feedback(request: web.Request) -> web.Response:
    staff = await _signed_in(request, Role.ADMIN)
    if isinstance(staff, web.Response):
        return staff
    svc = services(request)
    default_from, default_to = reports.default_range(svc.clock)
    start, end = _day(request.query.get("from"), default_from), _day(request.query.get("to"), default_to)
    if end < start:
        start, end = end, start
    end = min(end, start + timedelta(days=366))
    low, high = feedback.day_range_ms(start, end)
    answers = await feedback.between(svc.redis, low, high)
    group_names = {g["id"]: g["name"] for g in await groups.all_groups(svc.redis)}
    user_names = {u.id: u.name or u.username for u in await all_users(svc.redis)}
    patient_names = {p["id"]: p["display_name"] for p in await all_patients(svc.redis)}
    return render(request, "admin_feedback.html", {
        **_base(staff, "Feedback"),
        "section": "feedback",
        "filters": {"from": start.isoformat(), "to": end.isoformat()},
        "by_group": [(group_names.get(a.key, a.key), a) for a in feedback.averages(answers, "group_id")],
        "by_facilitator": [(user_names.get(a.key, a.key or "—"), a)
                           for a in feedback.averages(answers, "facilitator_id")],
        "comments": [{"when": _local(a.at_ms, ZoneInfo("UTC")), "group": group_names.get(a.group_id, a.group_id),
                      "patient": patient_names.get(a.patient_id, a.patient_id), "rating": a.rating,
                      "comment": a.comment} for a in reversed(answers) if a.comment],
        "count": len(answers),
    })
