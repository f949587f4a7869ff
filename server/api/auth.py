"""POST /api/v1/login, POST /api/v1/logout, GET /api/v1/me."""

from __future__ import annotations

from aiohttp import web

from server import validation as v
from server.api.common import client_ip, json_response, read_json, require_staff
from server.auth.sessions import COOKIE_NAME
from server.auth.staff import authenticate
from server.errors import ApiError
from server.services import services


async def login(request: web.Request) -> web.Response:
    svc = services(request)
    body = v.body_object(await read_json(request), {"username", "password"})
    username = v.required_text(body, "username", 64)
    password = v.required_text(body, "password", 1024)
    ip = client_ip(request)
    if await svc.limiter.blocked(ip, username):
        svc.metrics.error("rate_limited")
        raise ApiError(429, "rate_limited", "too many failed sign-ins; try again later")
    user = await authenticate(svc.redis, username, password)
    if user is None:
        await svc.limiter.record_failure(ip, username)
        await svc.audit.append("login.failure", None, username=username[:64], ip=ip)
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    session, cookie = await svc.staff_sessions.start(user)
    await svc.audit.append("login.success", user.id, ip=ip)
    response = json_response({"user": user.public(), "csrf_token": session.csrf_token})
    response.set_cookie(
        COOKIE_NAME, cookie, httponly=True, samesite="Strict", secure=svc.settings.secure_cookies, path="/",
    )
    return response


async def logout(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request)
    await svc.staff_sessions.revoke(staff.token, staff.user.id)
    await svc.audit.append("logout", staff.user.id)
    response = json_response({"ok": True})
    response.del_cookie(COOKIE_NAME, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    staff = await require_staff(request)
    return json_response({"user": staff.user.public(), "csrf_token": staff.csrf_token})
