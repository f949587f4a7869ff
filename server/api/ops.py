"""GET /healthz (= /readyz), GET /livez, GET /metrics, GET /api/v1/openapi.json."""

from __future__ import annotations

import math
import time

from aiohttp import web

from server import deliver
from server.api.common import json_response, require_staff
from server.api.openapi import openapi_document
from server.auth.staff import Role
from server.billing import outbox
from server.clock import to_ms
from server.metrics import CONTENT_TYPE, BillingSnapshot
from server.services import services
from server.store.connection import UNAVAILABLE
from server.store.nodes import live_nodes


async def healthz(request: web.Request) -> web.Response:
    """Ready: Redis answers and the process is not draining (after SIGTERM). Redis is asked over
    the probe's own connection with a 1 s limit, so the answer comes within about a second even
    when a burst holds every pooled connection or Redis hangs."""
    svc = services(request)
    if svc.lobby.draining:
        answer = json_response({"status": "draining"}, status=503)
    elif not await svc.redis_probe.up():
        answer = json_response({"status": "unavailable", "redis": "down"}, status=503)
    else:
        answer = json_response({"status": "ok", "redis": "up"})
    return _from_node(request, answer)


async def livez(request: web.Request) -> web.Response:
    """Alive: the process answers; Redis is not asked (a Redis outage is no reason to restart it)."""
    return _from_node(request, json_response({"status": "ok"}))


def _from_node(request: web.Request, answer: web.Response) -> web.Response:
    """Which process answered (GET /api/v1/nodes lists them): for operators behind one port."""
    node = services(request).lobby.node
    if node is not None:
        answer.headers["X-Porchlight-Node"] = node.node_id
    return answer


async def nodes(request: web.Request) -> web.Response:
    """The processes of the deployment that heartbeat within PORCHLIGHT_NODE_TIMEOUT_SECONDS."""
    svc = services(request)
    await require_staff(request, Role.ADMIN)
    listed = await live_nodes(svc.redis, to_ms(svc.clock.now()), to_ms(svc.settings.node_timeout_seconds))
    return json_response({"nodes": listed})


async def metrics(request: web.Request) -> web.Response:
    svc = services(request)
    try:
        svc.metrics.billing(await outbox.backlog(svc.redis, to_ms(svc.clock.now())))
        # Wall-clock heartbeats (server/deliver.py), whatever clock this application runs on.
        svc.metrics.delivery_processes.set(await deliver.alive(svc.redis, to_ms(time.time())))
    except UNAVAILABLE:  # unknown, rather than the last values read: the scrape itself still works
        svc.metrics.billing(BillingSnapshot(math.nan, math.nan, math.nan))
        svc.metrics.delivery_processes.set(math.nan)
    return web.Response(body=svc.metrics.render(), headers={"Content-Type": CONTENT_TYPE,
                                                            "X-Content-Type-Options": "nosniff"})


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(request.app))
