"""`porchlight deliver`: the outboxes' webhook workers in a process of their own.

Billing records, safety alerts and reminder events are each sent by a `DeliveryWorker` (one per
outbox channel, server/billing/delivery.py). With PORCHLIGHT_DELIVERY=process, the default,
`porchlight serve` runs them here, in one child process it supervises (server/workers.py,
`DeliveryChild`), and no serving process sends webhooks: delivery no longer takes half of the
event loop that serves WebSockets and finalises sessions. With PORCHLIGHT_DELIVERY=external the
operator runs this command, one or several, on any machine: each record is claimed with a lease
(server/billing/outbox.py), so two processes never send one record at the same time.

The serving processes wake these workers over Redis pub/sub after queuing records
(server/billing/wake.py); the workers also poll, so a lost wake costs a poll interval. Each
process heartbeats in Redis (`keys.delivery_processes`), so /metrics of any serving process
says how many delivery processes are alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Mapping

from server.audit import AuditLog
from server.billing.delivery import DeliveryWorker, Endpoint, billing_endpoint
from server.billing.wake import listen
from server.clock import Clock, SystemClock, to_ms
from server.collector import CollectorPolicy
from server.ids import new_id
from server.measures.alerts import endpoint as alert_endpoint
from server.metrics import Metrics
from server.reminders.webhook import endpoint as reminder_endpoint
from server.settings import Settings
from server.store import keys
from server.store.connection import UNAVAILABLE, Redis, connect
from server.store.embedded import EmbeddedRedis

log = logging.getLogger("porchlight")

HEARTBEAT_SECONDS = 2.0
# A delivery process silent this long is not counted as alive (a few missed heartbeats).
ALIVE_SECONDS = 10.0
# On stop, the requests in flight get this long to be answered and stored; what is left is due
# again after its lease (server/billing/delivery.py LEASE_SECONDS).
STOP_SECONDS = 5.0


def endpoints(settings: Settings) -> list[Endpoint]:
    """Every outbox channel and where its records go: billing, alerts, reminders, in that order."""
    return [billing_endpoint(settings), alert_endpoint(settings), reminder_endpoint(settings)]


def delivery_workers(redis: Redis, clock: Clock, settings: Settings, audit: AuditLog, metrics: Metrics,
                     wakes: Mapping[str, asyncio.Event]) -> list[DeliveryWorker]:
    """One worker per channel (in the order of `endpoints`), each woken by its channel's event
    (a channel without one is only polled)."""
    return [DeliveryWorker(redis, clock, settings, audit, wake=wakes.get(endpoint.channel), metrics=metrics,
                           endpoint=endpoint) for endpoint in endpoints(settings)]


async def alive(redis: Redis, now_ms: int) -> int:
    """Delivery processes that heartbeat within ALIVE_SECONDS (all machines)."""
    return int(await redis.zcount(keys.delivery_processes(), now_ms - to_ms(ALIVE_SECONDS), "+inf"))


async def run(settings: Settings, redis: Redis, stop: asyncio.Event, clock: Clock | None = None,
              ready: asyncio.Event | None = None) -> None:
    """Deliver every channel's records until `stop` is set, then finish the requests in flight
    (up to STOP_SECONDS). Returns early, raising, if a worker fails (its supervisor starts the
    process again)."""
    clock = clock or SystemClock()
    audit = AuditLog(redis, clock)
    events = {endpoint.channel: asyncio.Event() for endpoint in endpoints(settings)}
    workers = delivery_workers(redis, clock, settings, audit, Metrics(), events)
    process_id = new_id("dlv")
    subscribed = asyncio.Event()
    helpers = [asyncio.create_task(listen(redis, events, subscribed), name="delivery wake"),
               asyncio.create_task(_heartbeat(redis, clock, process_id), name="delivery heartbeat")]
    running: set[asyncio.Task[object]] = {asyncio.create_task(worker.run(), name=f"{worker.channel} delivery")
                                          for worker in workers}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(2.0):  # without Redis, start anyway: the workers wait for it
            await subscribed.wait()
    if ready is not None:
        ready.set()
    stopped: asyncio.Task[object] = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({stopped, *running}, return_when=asyncio.FIRST_COMPLETED)
        for worker in workers:
            worker.stop()
        done, left = await asyncio.wait(running, timeout=STOP_SECONDS)
        if left:
            log.warning("delivery: %d channel(s) still had requests in flight after %g s; they are sent "
                        "again once their lease runs out", len(left), STOP_SECONDS)
        for task in done:
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error
    finally:
        for task in [stopped, *running, *helpers]:
            task.cancel()
        await asyncio.gather(stopped, *running, *helpers, return_exceptions=True)
        with contextlib.suppress(*UNAVAILABLE):
            await redis.zrem(keys.delivery_processes(), process_id)


async def command(settings: Settings, supervised: bool) -> int:
    """`porchlight deliver`: the webhook delivery workers alone, until SIGTERM or SIGINT (or, for
    the process `porchlight serve` starts, until its standard input closes)."""
    if settings.redis_url:
        url = settings.redis_url
    elif EmbeddedRedis(settings.data_dir).running_elsewhere():
        url = EmbeddedRedis(settings.data_dir).url
    else:
        print("porchlight: deliver needs PORCHLIGHT_REDIS_URL, or `porchlight serve` running on this "
              "PORCHLIGHT_DATA_DIR (its embedded Redis)", file=sys.stderr)
        return 2
    # No PING first: with Redis away the workers wait for it (and deliver once it is back).
    redis = connect(url, settings.redis_pool_size, settings.redis_pool_timeout_seconds, settings.redis_timeout_seconds)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if supervised:
        for sig in (signal.SIGINT, signal.SIGTERM):  # the server stops it, after its own drain
            loop.add_signal_handler(sig, lambda: None)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

        async def until_closed() -> None:
            await reader.read()
            stop.set()

        closed = asyncio.create_task(until_closed())
    else:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    ready = asyncio.Event()
    CollectorPolicy().install()
    task = asyncio.create_task(run(settings, redis, stop, ready=ready))
    started = asyncio.create_task(ready.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    channels = ", ".join(name for name, url in (("billing", settings.billing_webhook_url),
                                                ("alerts", settings.alert_webhook_url),
                                                ("reminders", settings.notify_webhook_url)) if url) or "none configured"
    if not supervised:  # `serve` has said where it runs; its banner stays the last lines on the screen
        print(f"Porchlight delivery is running (webhooks: {channels}).", flush=True)
    try:
        await task
    finally:
        if supervised:
            closed.cancel()
        await redis.aclose()
    return 0


async def _heartbeat(redis: Redis, clock: Clock, process_id: str) -> None:
    while True:
        now = to_ms(clock.now())
        with contextlib.suppress(*UNAVAILABLE):
            async with redis.pipeline(transaction=False) as pipe:
                pipe.zadd(keys.delivery_processes(), {process_id: now})
                pipe.zremrangebyscore(keys.delivery_processes(), "-inf", now - 6 * to_ms(ALIVE_SECONDS))
                await pipe.execute()
        await asyncio.sleep(HEARTBEAT_SECONDS)
