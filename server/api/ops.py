"""GET /healthz (= /readyz), GET /livez, GET /metrics, GET /api/v1/openapi.json."""

from __future__ import annotations

import math

from aiohttp import web

from server.api.common import json_response
from server.api.openapi import openapi_document
from server.billing import outbox
from server.clock import to_ms
from server.metrics import CONTENT_TYPE, BillingSnapshot
from server.services import services
from server.store.connection import UNAVAILABLE


async def healthz(request: web.Request) -> web.Response:
    """Ready: Redis answers. Asked over the probe's own connection with a 1 s limit, so the answer
    comes within about a second even when a burst holds every pooled connection or Redis hangs."""
    if not await services(request).redis_probe.up():
        return json_response({"status": "unavailable", "redis": "down"}, status=503)
    return json_response({"status": "ok", "redis": "up"})


async def livez(request: web.Request) -> web.Response:
    """Alive: the process answers; Redis is not asked (a Redis outage is no reason to restart it)."""
    return json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    svc = services(request)
    try:
        pending, failed, oldest = await outbox.backlog(svc.redis, to_ms(svc.clock.now()))
        svc.metrics.billing(BillingSnapshot(pending, failed, oldest))
    except UNAVAILABLE:  # unknown, rather than the last values read: the scrape itself still works
        svc.metrics.billing(BillingSnapshot(math.nan, math.nan, math.nan))
    return web.Response(body=svc.metrics.render(), headers={"Content-Type": CONTENT_TYPE,
                                                            "X-Content-Type-Options": "nosniff"})


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(request.app))
