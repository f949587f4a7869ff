"""Measures, safety alerts and feedback (CONTRACT.md v1.1, "Measures, alerts and feedback").

Staff see what concerns their groups: a facilitator sees the alerts of the groups they run and
the measures of patients enrolled (now or before) in one of them; admins see all. Every look at
a patient's measures is audited, as exports of attendance are.
"""

from __future__ import annotations

from aiohttp import web

from server import validation as v
from server.api.attendance import date_range
from server.api.common import json_response, may_run, read_json, require_group_rights, require_staff
from server.auth.sessions import StaffSession
from server.auth.staff import Role
from server.clinic import enrollments, groups
from server.clinic.patients import patients_by_id, require_patient
from server.clock import to_ms
from server.errors import bad_request, forbidden
from server.measures import alerts, feedback, store
from server.services import Services, services


async def patient_groups(svc: Services, patient_id: str) -> list[str]:
    """The groups the patient is or was enrolled in."""
    found = []
    for group in await groups.all_groups(svc.redis):
        if any(e["patient_id"] == patient_id for e in await enrollments.group_enrollments(svc.redis, group["id"])):
            found.append(group["id"])
    return found


async def may_see_patient(svc: Services, staff: StaffSession, patient_id: str) -> bool:
    if staff.user.role is Role.ADMIN:
        return True
    mine = {g["id"] for g in await groups.all_groups(svc.redis) if may_run(staff, g)}
    return bool(mine & set(await patient_groups(svc, patient_id)))


async def patient_measures(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request)
    patient_id = v.an_id(request.match_info["patient_id"], "patient_id")
    await require_patient(svc.redis, patient_id)
    if not await may_see_patient(svc, staff, patient_id):
        raise forbidden("this patient is not in a group you facilitate")
    measures = await store.measures_of(svc.redis, patient_id)
    await svc.audit.append("measures.view", staff.user.id, patient_id=patient_id, rows=len(measures))
    return json_response({"measures": [m.public() for m in measures]})


async def list_alerts(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request)
    status = request.query.get("status") or None
    if status is not None and status not in alerts.STATUSES:
        raise bad_request(f"status: one of {', '.join(alerts.STATUSES)}")
    visible = [g["id"] for g in await groups.all_groups(svc.redis) if may_run(staff, g)]
    found = await alerts.of_groups(svc.redis, visible, status)
    names = await patients_by_id(svc.redis, sorted({a.patient_id for a in found}))
    return json_response({"alerts": [a.public(names.get(a.patient_id, {}).get("display_name", "Patient"))
                                     for a in found]})


async def acknowledge_alert(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request)
    alert = await alerts.require(svc.redis, v.an_id(request.match_info["alert_id"], "alert_id"))
    require_group_rights(staff, await groups.require_group(svc.redis, alert.group_id))
    body = v.body_object(await read_json(request), {"note"})
    note = v.text(body, "note", alerts.MAX_NOTE, required=False, min_len=0, multiline=True)
    done = await alerts.acknowledge(svc.redis, alert, staff.user.id, note, to_ms(svc.clock.now()))
    await svc.audit.append("safety_alert.acknowledge", staff.user.id, alert_id=alert.id, group_id=alert.group_id,
                           patient_id=alert.patient_id)
    names = await patients_by_id(svc.redis, [alert.patient_id])
    public = done.public(names.get(alert.patient_id, {}).get("display_name", "Patient"))
    # Every console of the group takes its banner down (the same frame, now acknowledged).
    await svc.lobby.act(alert.group_id, "tell_staff", frame={"type": "safety_alert", "alert": public})
    return json_response(public)


async def list_feedback(request: web.Request) -> web.Response:
    svc = services(request)
    await require_staff(request, Role.ADMIN)
    start, end = date_range(request)
    group_id = request.query.get("group_id")
    low, high = feedback.day_range_ms(start, end)
    found = await feedback.between(svc.redis, low, high, v.an_id(group_id, "group_id") if group_id else None)
    return json_response({"feedback": [f.public() for f in found]})
