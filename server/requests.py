"""Facts about a request that the HTTP and WebSocket handlers share: who the client is (behind
trusted proxies) and whether it comes from our own origin."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlparse

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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


def client_address(request: web.Request, trusted: tuple[Network, ...]) -> str:
    """The client's address, for per-address limits: the peer, or behind a trusted reverse
    proxy (PORCHLIGHT_TRUSTED_PROXIES) the address that proxy saw (X-Forwarded-For)."""
    peer = request.remote or "unknown"
    if not trusted:
        return peer
    return forwarded_client(peer, request.headers.getall("X-Forwarded-For", []), trusted)


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
