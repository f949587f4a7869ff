"""Webhook delivery in a process of its own (PORCHLIGHT_DELIVERY=process, `porchlight deliver`):
real `porchlight serve` processes, a real Redis, a real local receiver."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from server.billing import delivery, outbox
from server.billing.wake import Wake, listen
from server.clock import to_ms
from server.store import keys
from server.store.connection import Redis, connect
from tests.conftest import RedisServer
from tests.test_billing import verify_standard_webhook
from tests.test_billing_crash import attend_and_end, signed_in, start
from tests.test_cli import PORCHLIGHT, _env
from tests.test_delivery_batches import SECRET, delivered_entries, holding_receiver, queue_records, serve_hook

PASSWORD = "a long password"


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def delivery_children(pid: int) -> list[int]:
    """The `porchlight deliver` processes started by the process `pid`."""
    found = []
    for child in children(pid):
        try:
            if b"deliver" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0"):
                found.append(child)
        except FileNotFoundError:
            continue
    return found


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for its parent counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def until(condition: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    async with asyncio.timeout(seconds):
        while not await condition():
            await asyncio.sleep(0.05)


async def one_delivery_child(pid: int) -> int:
    found: list[int] = []

    async def started() -> bool:
        found[:] = delivery_children(pid)
        return len(found) == 1

    await until(started)
    return found[0]


class Receiver:
    """The clinic's billing system: 204 for each webhook, noting its id and bytes."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.arrived = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert verify_standard_webhook(SECRET, request.headers, body, time.time())
        self.got.append((request.headers["webhook-id"], body))
        self.arrived.set()
        return web.Response(status=204)


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    rec = Receiver()
    rec.url = await serve_hook(aiohttp_server, rec.handle)
    return rec


@pytest.fixture
async def own(own_redis: RedisServer) -> AsyncIterator[Redis]:
    client = connect(own_redis.url)
    yield client
    await client.aclose()


async def stopped(process: asyncio.subprocess.Process, delivery_pid: int) -> None:
    """SIGTERM to the server: it exits 0, and its delivery process is gone with it."""
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 60) == 0
    assert gone(delivery_pid)


async def restarted(server_pid: int, killed: int) -> int:
    """The pid of the delivery process the server started in place of `killed`."""
    found: list[int] = []

    async def started_again() -> bool:
        found[:] = delivery_children(server_pid)
        return found not in ([], [killed])

    await until(started_again)
    return found[0]


async def end_a_session(base: str) -> str:
    """Through the API of a running server: a group, a patient admitted, the session ended.
    The id of the billing record its finalisation queued."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        login, call = signed_in(http, jar, base, PASSWORD)

        csrf = await login("dana")
        await attend_and_end(http, base, login, call, (await call("GET", "/me", csrf))["user"]["id"])
        csrf = await login("admin")
        listed: list[dict[str, Any]] = []

        async def queued() -> bool:  # the session is finalised by the process that hosted it
            listed[:] = (await call("GET", "/billing/deliveries", csrf))["deliveries"]
            return len(listed) == 1

        await until(queued)
        return str(listed[0]["record_id"])


async def scrape(base: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as resp:
        text = await resp.text()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


async def add_staff(env: dict[str, str]) -> None:
    for name, role in (("admin", "admin"), ("dana", "facilitator")):
        added = await asyncio.to_thread(
            subprocess.run, [*PORCHLIGHT, "user", "add", name, "--role", role, "--npi", "1234567893"],
            input=PASSWORD + "\n", text=True, capture_output=True, env=env, timeout=60)
        assert added.returncode == 0, added.stderr


async def test_workers_finalise_and_their_one_delivery_process_sends_the_record(
    tmp_path: Path, own_redis: RedisServer, own: Redis, receiver: Receiver
) -> None:
    """PORCHLIGHT_WORKERS=2: the supervisor runs one delivery process beside the two workers; a
    session ended in a worker has its record sent by that process (the worker sends none); the
    supervisor starts it again when it is killed; SIGTERM stops them all."""
    env = _env(tmp_path, PORCHLIGHT_REDIS_URL=own_redis.url, PORCHLIGHT_WORKERS="2",
               PORCHLIGHT_BILLING_WEBHOOK_URL=receiver.url, PORCHLIGHT_BILLING_WEBHOOK_SECRET=SECRET)
    await add_staff(env)
    process, base = await start(env)
    try:
        sender = await one_delivery_child(process.pid)
        record_id = await end_a_session(base)
        await asyncio.wait_for(receiver.arrived.wait(), 30)
        assert [webhook_id for webhook_id, _ in receiver.got] == [record_id]
        await until(lambda: _delivered(own, 1))
        metrics = await scrape(base)
        assert metrics["porchlight_delivery_processes"] == 1
        assert metrics["porchlight_billing_records_delivered"] == 1
        assert metrics["porchlight_billing_delivered_total"] == 0  # the serving processes send nothing
        assert len(delivery_children(process.pid)) == 1  # one delivery process, whatever the workers
        os.kill(sender, signal.SIGKILL)
        sender = await restarted(process.pid, sender)
        await until(lambda: _alive(own))  # its heartbeat; the killed one's lapses
    finally:
        if process.returncode is None:
            await stopped(process, sender)


async def _delivered(redis: Redis, count: int) -> bool:
    return int(await redis.zcard(keys.billing_by_status("delivered"))) >= count


async def test_a_delivery_process_killed_mid_batch_is_started_again_and_skips_nothing_and_sends_nothing_twice(
    tmp_path: Path, own_redis: RedisServer, own: Redis, aiohttp_server: Any
) -> None:
    """`porchlight serve` (one process) with its delivery process: the receiver acknowledges the
    first `answered` requests and holds the rest; once those outcomes are stored the delivery
    process is killed with SIGKILL. The server starts it again; once the held records' lease has
    run out (their due times moved to now in Redis, as 60 s later) it sends them: every record
    acknowledged once with the same bytes, one audit entry each, and the chain verifies."""
    answered = 12
    count = answered + delivery.IN_FLIGHT
    seen, release, handle = holding_receiver(answered)
    hook_url = await serve_hook(aiohttp_server, handle)
    env = _env(tmp_path, PORCHLIGHT_REDIS_URL=own_redis.url, PORCHLIGHT_BILLING_WEBHOOK_URL=hook_url,
               PORCHLIGHT_BILLING_WEBHOOK_SECRET=SECRET, PORCHLIGHT_BILLING_RETRY_BASE_SECONDS="0.2")
    process, _ = await start(env)
    sender = await one_delivery_child(process.pid)
    try:
        bodies = await queue_records(own, count, to_ms(time.time()))
        await until(lambda: _seen_and_stored(own, seen, count, answered))
        os.kill(sender, signal.SIGKILL)
        held = {record_id for record_id, _, ok in seen if not ok}
        assert len(held) == count - answered
        assert await own.zcard(keys.billing_by_status("pending")) == len(held)  # claimed, outcome unknown
        assert await own.zcount(keys.billing_due(), "-inf", to_ms(time.time())) == 0  # leased
        sender = await restarted(process.pid, sender)
        await own.zadd(keys.billing_due(), {record_id: to_ms(time.time()) for record_id in held})
        release.set()
        await until(lambda: _delivered(own, count))

        acknowledged = collections.Counter(record_id for record_id, _, ok in seen if ok)
        assert acknowledged == collections.Counter(list(bodies))  # every record once: none twice, none skipped
        assert all(body == bodies[record_id] for record_id, body, _ in seen)  # the same bytes
        assert await delivered_entries(own) == collections.Counter(list(bodies))
        verify = await asyncio.create_subprocess_exec(*PORCHLIGHT, "audit", "verify", env=env,
                                                      stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        said, _ = await asyncio.wait_for(verify.communicate(), 60)
        assert verify.returncode == 0, said.decode()
        assert f"audit log intact: {count} entries verified" in said.decode()
    finally:
        release.set()
        if process.returncode is None:
            await stopped(process, sender)


async def _seen_and_stored(redis: Redis, seen: list[tuple[str, bytes, bool]], count: int, answered: int) -> bool:
    return len(seen) >= count and int(await redis.zcard(keys.billing_by_status("delivered"))) >= answered


async def test_two_deliver_processes_send_each_record_once(
    tmp_path: Path, own_redis: RedisServer, own: Redis, aiohttp_server: Any
) -> None:
    """PORCHLIGHT_DELIVERY=external: two `porchlight deliver` on one Redis (as on two machines)
    share the outbox; their claims never overlap, so each record is sent once."""
    count = 3 * delivery.BATCH
    got: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        assert verify_standard_webhook(SECRET, request.headers, body, time.time())
        got.append(request.headers["webhook-id"])
        await asyncio.sleep(0.002)  # requests overlap: both processes have some in flight
        return web.Response(status=204)

    hook_url = await serve_hook(aiohttp_server, handle)
    env = _env(tmp_path, PORCHLIGHT_REDIS_URL=own_redis.url, PORCHLIGHT_BILLING_WEBHOOK_URL=hook_url,
               PORCHLIGHT_BILLING_WEBHOOK_SECRET=SECRET, PORCHLIGHT_DELIVERY="external")
    senders = [await _deliver(env) for _ in range(2)]
    try:
        bodies = await queue_records(own, count, to_ms(time.time()))
        await until(lambda: _delivered(own, count), 120)
        assert collections.Counter(got) == collections.Counter(list(bodies))
        assert await delivered_entries(own) == collections.Counter(list(bodies))
        assert await own.zcard(keys.delivery_processes()) == 2
    finally:
        for sender in senders:
            if sender.returncode is None:
                sender.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(sender.wait(), 30) for sender in senders]
    assert codes == [0, 0]
    assert await own.zcard(keys.delivery_processes()) == 0  # each says goodbye


async def _deliver(env: dict[str, str]) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(*PORCHLIGHT, "deliver", env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    assert line.startswith(b"Porchlight delivery is running (webhooks: billing)"), line
    return process


async def test_deliver_without_a_redis_says_what_it_needs(tmp_path: Path) -> None:
    done = await asyncio.to_thread(subprocess.run, [*PORCHLIGHT, "deliver"], env=_env(tmp_path),
                                   capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "PORCHLIGHT_REDIS_URL" in done.stderr


async def test_a_redis_outage_costs_the_delivery_process_nothing(
    tmp_path: Path, own_redis: RedisServer, own: Redis, receiver: Receiver
) -> None:
    """Redis stops answering (SIGSTOP) longer than a command's timeout, then comes back: the
    delivery process lives on, hears the next wake and sends what was queued, each record once.
    (The Redis URL from a file, as orchestrators mount it: the delivery process reads it too.)"""
    (tmp_path / "redis-url").write_text(own_redis.url)
    env = _env(tmp_path, PORCHLIGHT_REDIS_URL_FILE=str(tmp_path / "redis-url"),
               PORCHLIGHT_BILLING_WEBHOOK_URL=receiver.url, PORCHLIGHT_BILLING_WEBHOOK_SECRET=SECRET)
    process, _ = await start(env)
    sender = await one_delivery_child(process.pid)
    assert own_redis.process is not None
    try:
        await until(lambda: _alive(own))
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        await asyncio.sleep(3)  # the outage itself (no assertion rests on this sleep)
        os.kill(own_redis.process.pid, signal.SIGCONT)
        bodies = await queue_records(own, 40, to_ms(time.time()))
        Wake(outbox.BILLING, own).set()
        await until(lambda: _delivered(own, len(bodies)))
        assert collections.Counter(i for i, _ in receiver.got) == collections.Counter(list(bodies))
        assert delivery_children(process.pid) == [sender]  # the same process, not a restart
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
        if process.returncode is None:
            await stopped(process, sender)


async def _alive(redis: Redis) -> bool:
    """One delivery process heartbeats now (members that stopped beating are not counted)."""
    return int(await redis.zcount(keys.delivery_processes(), to_ms(time.time()) - 1500, "+inf")) == 1


async def test_a_wake_set_in_one_process_is_heard_by_a_listener_elsewhere(redis: Redis) -> None:
    """Wakes cross processes over Redis pub/sub, each channel's to its own event; several set at
    once are coalesced, and at least the last one is heard."""
    events = {outbox.BILLING: asyncio.Event(), "reminders": asyncio.Event()}
    subscribed = asyncio.Event()
    listening = asyncio.create_task(listen(redis, events, subscribed))
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        wake = Wake(outbox.BILLING, redis)
        for _ in range(8):
            wake.set()
        await asyncio.wait_for(events[outbox.BILLING].wait(), 10)
        assert wake.event.is_set()
        events[outbox.BILLING].clear()
        Wake("reminders", redis).set()
        await asyncio.wait_for(events["reminders"].wait(), 10)
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)


async def test_a_delivery_process_never_outlives_its_server(
    tmp_path: Path, own_redis: RedisServer, receiver: Receiver
) -> None:
    """The server killed with SIGKILL (no chance to stop anything): its delivery process sees its
    pipe close and exits by itself."""
    env = _env(tmp_path, PORCHLIGHT_REDIS_URL=own_redis.url, PORCHLIGHT_BILLING_WEBHOOK_URL=receiver.url,
               PORCHLIGHT_BILLING_WEBHOOK_SECRET=SECRET)
    process, _ = await start(env)
    sender = await one_delivery_child(process.pid)
    process.send_signal(signal.SIGKILL)
    await process.wait()

    async def exited() -> bool:
        return gone(sender)

    await until(exited, 20)
