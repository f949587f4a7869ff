"""Billing delivery log and replay (admins)."""

from __future__ import annotations

from aiohttp import web

from server import validation as v
from server.api.common import json_response, require_staff
from server.auth.staff import Role
from server.billing import outbox
from server.clock import to_ms
from server.errors import ApiError, ErrorCode, bad_request, not_found
from server.services import services
from server.store import keys


async def deliveries(request: web.Request) -> web.Response:
    svc = services(request)
    await require_staff(request, Role.ADMIN)
    status = request.query.get("status") or None
    if status is not None and status not in outbox.STATUSES:
        raise bad_request(f"status: one of {', '.join(outbox.STATUSES)}")
    return json_response({"deliveries": await outbox.deliveries(svc.redis, status)})


async def replay(request: web.Request) -> web.Response:
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    record_id = v.an_id(request.match_info["record_id"], "id")
    delivery = await svc.redis.hgetall(keys.billing_delivery(record_id))
    if not delivery:
        raise not_found("delivery")
    if delivery["status"] != "failed":
        raise ApiError(409, ErrorCode.NOT_FAILED,
                       f"only failed deliveries are replayed; this one is {delivery['status']}")
    now = to_ms(svc.clock.now())
    # A replay is an admin saying the endpoint is fixed: a 410-disabled endpoint is enabled again.
    await svc.redis.delete(keys.billing_endpoint_disabled())
    await outbox.set_status(svc.redis, record_id, "pending", now, next_attempt_at=now, first_attempt_at="",
                            attempts=0)
    await svc.audit.append("billing.replay", staff.user.id, record_id=record_id)
    svc.lobby.delivery_wake.set()
    return json_response(outbox.describe(await svc.redis.hgetall(keys.billing_delivery(record_id))))
