"""What every handler shares: JSON in and out, the staff check, CSRF, group rights."""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from server.auth.sessions import COOKIE_NAME, StaffSession
from server.auth.staff import Role, can_run
from server.errors import ApiError, ErrorCode, bad_request, forbidden
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


def same_origin(request: web.Request, public_url: str) -> bool:
    """False when the request carries an Origin other than PORCHLIGHT_PUBLIC_URL's (absent is fine:
    browsers send it on every cross-site request that matters here)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return _origin_of(origin) == _origin_of(public_url)


def _origin_of(url: str) -> tuple[str, str, int | None] | None:
    try:
        parsed = urlparse(url.strip())
        port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    except ValueError:
        return None  # a malformed Origin (a bad port) matches nothing, like "null"
    return (parsed.scheme, (parsed.hostname or "").lower(), port) if parsed.hostname else None


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
    """The client's address, for per-address limits: the peer, or behind a trusted reverse
    proxy (PORCHLIGHT_TRUSTED_PROXIES) the address that proxy saw (X-Forwarded-For)."""
    peer = request.remote or "unknown"
    trusted = services(request).settings.trusted_proxies
    if not trusted:
        return peer
    return forwarded_client(peer, request.headers.getall("X-Forwarded-For", []), trusted)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def forwarded_client(peer: str, forwarded: list[str], trusted: tuple[Network, ...]) -> str:
    """Walk X-Forwarded-For from the right (the hops nearest us) while each hop is a trusted
    proxy; the first address not a proxy is the client. Anything a client wrote further left is
    never believed, and an unreadable hop stops the walk at the last proxy."""

    def is_proxy(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    if not is_proxy(peer):
        return peer
    hops = [hop.strip() for header in forwarded for hop in header.split(",")]
    client = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break
        client = hop
        if not is_proxy(hop):
            break
    return client
