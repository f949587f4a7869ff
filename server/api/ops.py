"""GET /healthz, GET /metrics, GET /api/v1/openapi.json."""

from __future__ import annotations

from aiohttp import web

from server.api.common import json_response
from server.api.openapi import openapi_document
from server.services import services
from server.store.connection import UNAVAILABLE


async def healthz(request: web.Request) -> web.Response:
    svc = services(request)
    try:
        await svc.redis.ping()
    except UNAVAILABLE:
        return json_response({"status": "unavailable", "redis": "down"}, status=503)
    return json_response({"status": "ok", "redis": "up"})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=services(request).metrics.render(), content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(request.app))
