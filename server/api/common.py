"""What every handler shares: JSON in and out, the staff check, CSRF, group rights."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from server.auth.sessions import COOKIE_NAME, StaffSession
from server.auth.staff import Role, can_run
from server.errors import ApiError, ErrorCode, bad_request, forbidden
from server.requests import client_address, same_origin
from server.services import services
from server.validation import parse_json

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
STAFF_SESSION = web.RequestKey("staff_session", StaffSession)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, separators=(",", ":")))


async def read_json(request: web.Request) -> Any:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = services(request).settings.max_json_bytes
        raise ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, f"bodies are limited to {limit} bytes") from None
    if not raw:
        raise bad_request("a JSON body is required")
    return parse_json(raw)


async def require_staff(request: web.Request, role: Role | None = None) -> StaffSession:
    """Authentication (401), then CSRF on state-changing requests (403), then role (403)."""
    svc = services(request)
    staff = await svc.staff_sessions.resume(request.cookies.get(COOKIE_NAME))
    if staff is None:
        raise ApiError(401, ErrorCode.UNAUTHORIZED, "sign in first")
    if request.method in STATE_CHANGING:
        token = request.headers.get("X-CSRF-Token", "")
        if token != staff.csrf_token or not same_origin(request, svc.settings.public_url):
            raise ApiError(403, ErrorCode.CSRF_FAILED, "missing or wrong X-CSRF-Token, or a foreign Origin")
    if role is Role.ADMIN and staff.user.role is not Role.ADMIN:
        raise forbidden("admins only")
    request[STAFF_SESSION] = staff
    return staff


def may_run(staff: StaffSession, group: dict[str, Any]) -> bool:
    return can_run(staff.user, group)


def require_group_rights(staff: StaffSession, group: dict[str, Any]) -> None:
    if not may_run(staff, group):
        raise forbidden("you do not facilitate this group")


def client_ip(request: web.Request) -> str:
    """The client's address for per-address limits (PORCHLIGHT_TRUSTED_PROXIES honoured)."""
    return client_address(request, services(request).settings.trusted_proxies)
