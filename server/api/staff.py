"""Staff accounts from the admin pages: list, add, edit and deactivate (admins; audited).

`porchlight user add` stays for the first admin; these are the same store (server/auth/staff.py).
A deactivated account keeps its id, name and NPI (records and groups still name it), cannot sign
in, and its sign-ins end at once. An admin cannot deactivate their own account, so a clinic is
never left without one by accident.
"""

from __future__ import annotations

from aiohttp import web

from server import validation as v
from server.api.common import json_response, read_json, require_staff
from server.auth.staff import MAX_NAME, MAX_PASSWORD, Role, StaffError, all_users, create_user, get_user, update_user
from server.errors import ApiError, ErrorCode, bad_request, forbidden, not_found
from server.services import services


def _refused(exc: StaffError) -> ApiError:
    if exc.code == ErrorCode.USERNAME_TAKEN:
        return ApiError(409, ErrorCode.USERNAME_TAKEN, exc.message)
    return bad_request(exc.message)


async def list_users(request: web.Request) -> web.Response:
    svc = services(request)
    await require_staff(request, Role.ADMIN)
    return json_response({"users": [u.public() for u in await all_users(svc.redis)]})


async def add_user(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    body = v.body_object(await read_json(request), {"username", "password", "role", "name", "npi"})
    username = v.required_text(body, "username", 64)
    password = v.password(body, "password", MAX_PASSWORD)
    if body.get("role") not in (Role.ADMIN, Role.FACILITATOR):
        raise bad_request("role: admin or facilitator")
    name = v.text(body, "name", MAX_NAME, required=False)
    npi = v.text(body, "npi", 10, required=False)
    try:
        user = await create_user(svc.redis, username, password, Role(body["role"]), name, npi or None)
    except StaffError as exc:
        raise _refused(exc) from None
    await svc.audit.append("user.create", staff.user.id, user_id=user.id, role=str(user.role))
    return json_response(user.public(), status=201)


async def patch_user(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    user_id = v.an_id(request.match_info["user_id"], "user_id")
    body = v.body_object(await read_json(request), {"name", "npi", "active"})
    if not body:
        raise bad_request("name, npi or active: at least one")
    name = v.text(body, "name", MAX_NAME, required=False)
    npi = v.text(body, "npi", 10, required=False)
    active = v.boolean(body, "active")
    user = await get_user(svc.redis, user_id)
    if user is None:
        raise not_found("user")
    if active is False and user.id == staff.user.id:
        raise forbidden("you cannot deactivate your own account; another admin can")
    try:
        updated = await update_user(svc.redis, user, name=name, npi=npi, active=active)
    except StaffError as exc:
        raise _refused(exc) from None
    fields = sorted(k for k in body if body[k] is not None)
    if fields:
        await svc.audit.append("user.update", staff.user.id, user_id=user.id, fields=fields,
                               **({"active": active} if active is not None else {}))
    return json_response(updated.public())
