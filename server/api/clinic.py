"""Groups, patients and enrolments (admins manage; facilitators see their groups)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server import validation as v
from server.api.common import json_response, may_run, read_json, require_group_rights, require_staff
from server.auth.staff import Role
from server.clinic import enrollments, groups, patients
from server.services import Services, services
from server.store import keys


async def _with_open_session(svc: Services, group: dict[str, Any]) -> dict[str, Any]:
    return {**groups.stored(group), "open_session_id": await svc.redis.get(keys.group_open_session(group["id"]))}


async def _close_patient(svc: Services, enrollment: dict[str, Any]) -> None:
    await svc.lobby.act(enrollment["group_id"], "revoke_link", patient_id=enrollment["patient_id"])


async def create_group(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    fields = await groups.validated_fields(svc.redis, await read_json(request), creating=True)
    group = await groups.create_group(svc.redis, fields, svc.clock.now())
    await svc.audit.append("group.create", staff.user.id, group_id=group["id"])
    return json_response(await _with_open_session(svc, group), status=201)


async def list_groups(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request)
    visible = [g for g in await groups.all_groups(svc.redis) if may_run(staff, g)]
    return json_response({"groups": [await _with_open_session(svc, g) for g in visible]})


async def get_group(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request)
    group = await groups.require_group(svc.redis, v.an_id(request.match_info["group_id"], "group_id"))
    require_group_rights(staff, group)
    return json_response(await _with_open_session(svc, group))


async def patch_group(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    group = await groups.require_group(svc.redis, v.an_id(request.match_info["group_id"], "group_id"))
    fields = await groups.validated_fields(svc.redis, await read_json(request), creating=False, current=group)
    updated = await groups.update_group(svc.redis, group, fields)
    await svc.lobby.act(group["id"], "group_changed")  # its host takes the new version
    await svc.audit.append("group.update", staff.user.id, group_id=group["id"], fields=sorted(fields))
    return json_response(await _with_open_session(svc, updated))


async def list_patients(request: web.Request) -> web.Response:
    svc = services(request)
    await require_staff(request, Role.ADMIN)
    return json_response({"patients": [patients.public(p) for p in await patients.all_patients(svc.redis)]})


async def create_patient(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    fields = patients.validated_fields(await read_json(request))
    patient = await patients.create_patient(svc.redis, fields, svc.clock.now())
    await svc.audit.append("patient.create", staff.user.id, patient_id=patient["id"])
    return json_response(patient, status=201)


async def patch_patient(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    patient_id = v.an_id(request.match_info["patient_id"], "patient_id")
    fields = patients.validated_fields(await read_json(request), creating=False)
    patient = await patients.update_patient(svc.redis, patient_id, fields)
    await svc.audit.append("patient.update", staff.user.id, patient_id=patient_id, fields=sorted(fields))
    return json_response(patients.public(patient))


async def list_enrollments(request: web.Request) -> web.Response:
    svc = services(request)
    await require_staff(request, Role.ADMIN)
    group = await groups.require_group(svc.redis, v.an_id(request.match_info["group_id"], "group_id"))
    rows = await enrollments.group_enrollments(svc.redis, group["id"])
    return json_response({"enrollments": [enrollments.public(e, svc.links) for e in rows]})


async def create_enrollment(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    group = await groups.require_group(svc.redis, v.an_id(request.match_info["group_id"], "group_id"))
    fields = enrollments.validated_fields(await read_json(request))
    await patients.require_patient(svc.redis, fields["patient_id"])
    enrollment = await enrollments.create_enrollment(svc.redis, group["id"], fields, svc.clock.now())
    await svc.audit.append("enrollment.create", staff.user.id, enrollment_id=enrollment["id"],
                           group_id=group["id"], patient_id=fields["patient_id"])
    return json_response(enrollments.public(enrollment, svc.links), status=201)


async def rotate_link(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    enrollment = await enrollments.require_enrollment(svc.redis, v.an_id(request.match_info["enrollment_id"], "id"))
    rotated = await enrollments.rotate_link(svc.redis, enrollment)
    await _close_patient(svc, enrollment)
    await svc.audit.append("link.rotate", staff.user.id, enrollment_id=enrollment["id"])
    return json_response({"join_url": svc.links.url(rotated["id"], rotated["link_version"])})


async def end_enrollment(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    enrollment = await enrollments.require_enrollment(svc.redis, v.an_id(request.match_info["enrollment_id"], "id"))
    ended = await enrollments.end_enrollment(svc.redis, enrollment, svc.clock.now())
    await _close_patient(svc, enrollment)
    await svc.audit.append("enrollment.end", staff.user.id, enrollment_id=enrollment["id"])
    return json_response(enrollments.public(ended, svc.links))


async def get_clinic_brand(request: web.Request) -> web.Response:
    svc = services(request)
    await require_staff(request, Role.ADMIN)
    own = await groups.clinic_brand(svc.redis)
    return json_response({"brand": {**groups.DEFAULT_BRAND, **own}, "set": sorted(own)})


async def put_clinic_brand(request: web.Request) -> web.Response:
    """Replace the clinic-wide brand; every group without its own fields shows it from now on
    (open waiting rooms take it at once, as after a group's change)."""
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    brand = groups.validate_brand(await read_json(request))
    full = await groups.set_clinic_brand(svc.redis, brand)
    for group in await groups.all_groups(svc.redis):
        await svc.lobby.act(group["id"], "group_changed")
    await svc.audit.append("clinic.brand", staff.user.id, fields=sorted(brand))
    return json_response({"brand": full, "set": sorted(brand)})
