"""Delivery rounds store their outcomes in batches: one audit entry per record, one transaction
per batch, a chain that verifies, and nothing sent twice or skipped when the worker is killed."""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from server.audit import AuditLog
from server.billing import delivery, outbox
from server.billing.delivery import DeliveryWorker
from server.clock import ManualClock, to_ms
from server.settings import Settings
from server.store import keys
from server.store.connection import Redis
from tests.conftest import RedisServer
from tests.test_billing import verify_standard_webhook
from tests.test_cli import PORCHLIGHT, _env

SECRET = "whsec_" + base64.b64encode(b"batch-test-webhook-secret-012345").decode()

# The worker as its own process, as `porchlight serve` runs it, with its clock `OFFSET` seconds
# ahead (a later life of the worker: claims whose lease ran out are due again).
WORKER = """
import asyncio, os, time
from server.audit import AuditLog
from server.billing.delivery import DeliveryWorker
from server.settings import Settings
from server.store.connection import connect

class Later:
    def now(self):
        return time.time() + float(os.environ["OFFSET"])

async def main():
    redis = connect(os.environ["REDIS_URL"])
    clock = Later()
    settings = Settings(billing_webhook_url=os.environ["HOOK"], billing_webhook_secrets=(os.environ["SECRET"],),
                        billing_retry_base_seconds=0.2)
    print("ready", flush=True)
    await DeliveryWorker(redis, clock, settings, AuditLog(redis, clock)).run()

asyncio.run(main())
"""


async def queue_records(redis: Redis, count: int, now_ms: int) -> dict[str, bytes]:
    bodies = {f"rec_batch{i:03d}": json.dumps({"type": "session.duration", "n": i}).encode() for i in range(count)}
    async with redis.pipeline(transaction=True) as pipe:
        for record_id, body in bodies.items():
            outbox.queue(pipe, record_id, body, {"session_id": "ses_x", "patient_id": f"pat_{record_id}"}, now_ms)
        await pipe.execute()
    return bodies


async def delivered_entries(redis: Redis) -> collections.Counter[str]:
    entries = await AuditLog(redis, ManualClock()).entries()
    return collections.Counter(e["details"]["record_id"] for e in entries if e["action"] == "billing.delivered")


async def test_a_batched_round_chains_one_entry_per_record_and_the_log_verifies(
    redis: Redis, aiohttp_server: Any
) -> None:
    got: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(request.headers["webhook-id"])
        return web.Response(status=204)

    server_url = await serve_hook(aiohttp_server, handle)
    clock = ManualClock(time.time())
    bodies = await queue_records(redis, delivery.BATCH + 10, to_ms(clock.now()))
    settings = Settings(billing_webhook_url=server_url, billing_webhook_secrets=(SECRET,))
    audit = AuditLog(redis, clock)
    other = AuditLog(redis, clock)  # another process appending meanwhile: WATCH makes one of them retry

    async def appends_elsewhere() -> None:
        for i in range(20):
            await other.append("attendance.finalise", None, session_id=f"ses_{i}")

    worker = DeliveryWorker(redis, clock, settings, audit)
    rounds = await asyncio.gather(worker.run_once(), appends_elsewhere(), worker.run_once())
    assert rounds[0] + rounds[2] == len(bodies)
    assert sorted(got) == sorted(bodies)
    assert await delivered_entries(redis) == collections.Counter(list(bodies))
    result = await audit.verify()
    assert result.ok, result.problem
    assert result.checked == len(bodies) + 20
    assert await redis.zcard(keys.billing_by_status("delivered")) == len(bodies)


async def test_a_worker_killed_mid_batch_skips_nothing_and_sends_nothing_twice(
    own_redis: RedisServer, aiohttp_server: Any
) -> None:
    """The receiver acknowledges the first `answered` requests of a round and holds the rest
    (as many as the worker sends at once). Once those outcomes are stored the worker is killed
    (SIGKILL), its round half done; a second worker process, a lease later, delivers the held
    records: each record is acknowledged once, with the same bytes, and the audit log has one
    entry per record and verifies."""
    from server.store.connection import connect

    answered = 12
    count = answered + delivery.IN_FLIGHT
    seen, release, handle = holding_receiver(answered)

    server_url = await serve_hook(aiohttp_server, handle)
    redis = connect(own_redis.url)
    try:
        bodies = await queue_records(redis, count, to_ms(time.time()))
        env = {**os.environ, "REDIS_URL": own_redis.url, "HOOK": server_url, "SECRET": SECRET}

        async def start(offset: float) -> asyncio.subprocess.Process:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", WORKER, env={**env, "OFFSET": str(offset)}, stdout=asyncio.subprocess.PIPE)
            assert process.stdout is not None
            assert (await asyncio.wait_for(process.stdout.readline(), 30)).strip() == b"ready"
            return process

        first = await start(0)
        try:
            async with asyncio.timeout(30):
                while len(seen) < count or await redis.zcard(keys.billing_by_status("delivered")) < answered:
                    await asyncio.sleep(0.02)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        held = {record_id for record_id, _, ok in seen if not ok}
        assert len(held) == count - answered
        assert await redis.zcard(keys.billing_by_status("pending")) == len(held)  # claimed, outcome unknown
        release.set()

        second = await start(delivery.LEASE_SECONDS + 1)
        try:
            async with asyncio.timeout(30):
                while await redis.zcard(keys.billing_by_status("delivered")) < count:
                    await asyncio.sleep(0.02)
        finally:
            second.send_signal(signal.SIGTERM)
            await second.wait()

        acknowledged = collections.Counter(record_id for record_id, _, ok in seen if ok)
        assert acknowledged == collections.Counter(list(bodies))  # every record once: none twice, none skipped
        assert all(body == bodies[record_id] for record_id, body, _ in seen)  # retries send the same bytes
        assert await delivered_entries(redis) == collections.Counter(list(bodies))
        result = await AuditLog(redis, ManualClock()).verify()
        assert result.ok, result.problem
        for record_id in held:
            assert (await redis.hgetall(keys.billing_delivery(record_id)))["attempts"] == "1"
    finally:
        await redis.aclose()


async def test_a_server_killed_mid_batch_skips_nothing_and_sends_nothing_twice(
    own_redis: RedisServer, aiohttp_server: Any, tmp_path: Path
) -> None:
    """The same with `porchlight serve` processes delivering inline on one Redis: the first server's worker has its
    requests in flight, the first `answered` acknowledged and stored, when it is killed with
    SIGKILL; once the lease of the rest has run out (their due times moved to now in Redis, as
    60 s later), a second server delivers them, each once, and the audit log verifies."""
    from server.store.connection import connect
    from tests.test_billing_crash import start

    answered = 12
    count = answered + delivery.IN_FLIGHT
    seen, release, handle = holding_receiver(answered)

    hook_url = await serve_hook(aiohttp_server, handle)
    redis = connect(own_redis.url)
    env = _env(tmp_path, PORCHLIGHT_REDIS_URL=own_redis.url, PORCHLIGHT_BILLING_WEBHOOK_URL=hook_url,
               PORCHLIGHT_BILLING_WEBHOOK_SECRET=SECRET, PORCHLIGHT_BILLING_RETRY_BASE_SECONDS="0.2",
               PORCHLIGHT_DELIVERY="inline")  # the serving process delivers (tests/test_delivery_process.py: its own)
    try:
        bodies = await queue_records(redis, count, to_ms(time.time()))
        first, _ = await start(env)
        try:
            async with asyncio.timeout(30):
                while len(seen) < count or await redis.zcard(keys.billing_by_status("delivered")) < answered:
                    await asyncio.sleep(0.02)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        held = {record_id for record_id, _, ok in seen if not ok}
        assert len(held) == count - answered
        assert await redis.zcard(keys.billing_by_status("pending")) == len(held)  # claimed, outcome unknown
        assert await redis.zcount(keys.billing_due(), "-inf", to_ms(time.time())) == 0  # leased
        await redis.zadd(keys.billing_due(), {record_id: to_ms(time.time()) for record_id in held})
        release.set()

        second, _ = await start(env)
        try:
            async with asyncio.timeout(30):
                while await redis.zcard(keys.billing_by_status("delivered")) < count:
                    await asyncio.sleep(0.02)
        finally:
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 30) == 0

        acknowledged = collections.Counter(record_id for record_id, _, ok in seen if ok)
        assert acknowledged == collections.Counter(list(bodies))  # every record once: none twice, none skipped
        assert all(body == bodies[record_id] for record_id, body, _ in seen)
        assert await delivered_entries(redis) == collections.Counter(list(bodies))
        verify = await asyncio.create_subprocess_exec(*PORCHLIGHT, "audit", "verify", env=env,
                                                      stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        said, _ = await asyncio.wait_for(verify.communicate(), 60)
        assert verify.returncode == 0, said.decode()  # the operator's check of the chain
        assert f"audit log intact: {count} entries verified" in said.decode()  # one per record
    finally:
        await redis.aclose()


async def serve_hook(aiohttp_server: Any, handle: Callable[[web.Request], Awaitable[web.Response]]) -> str:
    """`handle` behind POST /hook on a real local HTTP server: the hook's URL."""
    app = web.Application()
    app.router.add_post("/hook", handle)
    return str((await aiohttp_server(app)).make_url("/hook"))


def holding_receiver(answered: int) -> tuple[list[tuple[str, bytes, bool]], asyncio.Event,
                                              Callable[[web.Request], Awaitable[web.Response]]]:
    """A billing receiver that acknowledges the first `answered` requests and holds the rest
    until `release` is set (then answers 503): what it saw as (webhook-id, body, acknowledged)."""
    seen: list[tuple[str, bytes, bool]] = []
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if len(seen) < answered or release.is_set():
            seen.append((request.headers["webhook-id"], body, True))
            assert verify_standard_webhook(SECRET, request.headers, body, time.time())
            return web.Response(status=204)
        seen.append((request.headers["webhook-id"], body, False))
        await release.wait()  # held: the first worker dies before it has an answer
        return web.Response(status=503)

    return seen, release, handle
