"""POST /api/v1/login, POST /api/v1/logout, GET /api/v1/me."""

from __future__ import annotations

from aiohttp import web

from server import validation as v
from server.api.common import client_ip, json_response, read_json, require_staff
from server.auth.passwords import PasswordChecksBusy
from server.auth.sessions import COOKIE_NAME
from server.auth.staff import authenticate
from server.errors import ApiError, ErrorCode
from server.requests import same_origin
from server.services import services


async def login(request: web.Request) -> web.Response:
    svc = services(request)
    if _cross_site(request, svc.settings.public_url):
        # Login CSRF: a foreign page must not sign the browser in to an account of its choosing.
        raise ApiError(403, ErrorCode.CSRF_FAILED, "sign in from this site's own page")
    body = v.body_object(await read_json(request), {"username", "password"})
    username = v.required_text(body, "username", 64)
    password = v.password(body, "password", 1024)
    ip = client_ip(request)
    try:
        with svc.password_checks.place():
            refusal = await svc.limiter.reserve(ip, username)
            if refusal is not None:
                raise ApiError(429, ErrorCode.RATE_LIMITED, "too many sign-in attempts; try again later",
                               retry_after_seconds=refusal.retry_after_seconds)
            user = await authenticate(svc.redis, username, password, svc.password_checks)
    except PasswordChecksBusy:
        raise ApiError(503, ErrorCode.UNAVAILABLE, "too many sign-ins at once; try again in a moment") from None
    if user is None:
        await svc.audit.append("login.failure", None, username=username[:64], ip=ip)
        raise ApiError(401, ErrorCode.INVALID_CREDENTIALS, "wrong username or password")
    await svc.limiter.refund(ip, username)
    session, cookie = await svc.staff_sessions.start(user)
    await svc.audit.append("login.success", user.id, ip=ip)
    response = json_response({"user": user.public(), "csrf_token": session.csrf_token})
    response.set_cookie(
        COOKIE_NAME, cookie, httponly=True, samesite="Strict", secure=svc.settings.secure_cookies, path="/",
    )
    return response


def _cross_site(request: web.Request, public_url: str) -> bool:
    """A foreign Origin (the check every other state change makes), or a browser saying the
    request comes from another site (Sec-Fetch-Site, sent also where Origin is not)."""
    return not same_origin(request, public_url) or request.headers.get("Sec-Fetch-Site") == "cross-site"


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
