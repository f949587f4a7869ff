"""A webhook goes to the address that was checked. DNS here is a resolver the test scripts
(aiohttp's resolver interface); the only address ever connected to is loopback."""

from __future__ import annotations

import base64
import socket
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from server.audit import AuditLog
from server.billing import outbox
from server.billing.delivery import DeliveryWorker, webhook_session
from server.clock import ManualClock, to_ms
from server.settings import Settings
from server.store import keys
from server.store.connection import Redis

SECRET = "whsec_" + base64.b64encode(b"porchlight-test-webhook-secret!!").decode()


class ScriptedResolver(AbstractResolver):
    """Lookup n answers the n-th list of the script (the last one again after that)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = answers
        self.lookups = 0

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        answer = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        return [ResolveResult(hostname=host, host=a, port=port, proto=0, flags=0,
                              family=socket.AF_INET6 if ":" in a else socket.AF_INET) for a in answer]

    async def close(self) -> None:
        pass


@pytest.fixture
async def billing_host(aiohttp_server: Any) -> tuple[list[bytes], int]:
    """A billing endpoint on loopback; the test's DNS decides whether billing.test leads there."""
    received: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/billing", handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    return received, int(server.port)


async def deliver_once(redis: Redis, clock: ManualClock, settings: Settings, port: int,
                       resolver: ScriptedResolver) -> dict[str, Any]:
    configured = settings.replace(billing_webhook_url=f"http://billing.test:{port}/billing",
                                  billing_webhook_secrets=(SECRET,))
    worker = DeliveryWorker(redis, clock, configured, AuditLog(redis, clock))
    async with redis.pipeline(transaction=True) as pipe:
        outbox.queue(pipe, "rec_1", b'{"type":"session_duration.recorded"}', {}, to_ms(clock.now()))
        await pipe.execute()
    async with webhook_session(configured.billing_allow_link_local, resolver) as http:
        assert await worker.deliver_due(http) == 1
    return dict(await redis.hgetall(keys.billing_delivery("rec_1")))


async def test_the_connection_goes_to_the_address_that_was_checked(
    redis: Redis, clock: ManualClock, settings: Settings, billing_host: tuple[list[bytes], int]
) -> None:
    received, port = billing_host
    # Rebinding: a safe answer for the check, the metadata address for a second lookup.
    resolver = ScriptedResolver(["127.0.0.1"], ["169.254.169.254"])
    delivery = await deliver_once(redis, clock, settings, port, resolver)
    assert delivery["status"] == "delivered" and len(received) == 1
    assert resolver.lookups == 1  # checked and connected on one answer


@pytest.mark.parametrize("answer", [
    ["::ffff:169.254.169.254"], ["127.0.0.1", "::ffff:a9fe:a9fe"], ["169.254.169.254"], ["::ffff:169.254.3.4"],
])
async def test_a_host_that_resolves_to_a_metadata_or_link_local_address_is_never_called(
    redis: Redis, clock: ManualClock, settings: Settings, billing_host: tuple[list[bytes], int], answer: list[str]
) -> None:
    received, port = billing_host
    delivery = await deliver_once(redis, clock, settings, port, ScriptedResolver(answer))
    assert received == []
    assert delivery["status"] == "failed"  # for good: retrying would meet the same address
    assert "link-local or metadata" in delivery["last_error"]
