"""create_app(settings) -> web.Application: the one place the server is assembled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import urlparse

from aiohttp import web

from server import logs
from server.api.routes import setup_routes
from server.attendance import backfill
from server.audit import AuditLog
from server.auth.links import LinkSigner
from server.auth.passwords import PasswordChecks
from server.auth.ratelimit import LoginLimiter, LoginLimits
from server.auth.sessions import StaffSessions
from server.billing import outbox
from server.billing.delivery import DeliveryWorker
from server.billing.wake import Wake
from server.clock import Clock, SystemClock, to_ms
from server.deliver import delivery_workers
from server.errors import ApiError, ErrorCode
from server.ids import new_id
from server.lobby.registry import Lobby
from server.measures import alerts
from server.media.ice import IceServers, Turn
from server.media.outbound import Outlet
from server.media.room import MediaRooms, Source
from server.metrics import Metrics, RunningTotal
from server.pages.render import TEMPLATES, WEB_DIR, environment
from server.realtime.hello_gate import HelloGate
from server.realtime.relay import Relay
from server.reminders import webhook as reminder_events
from server.reminders.worker import ReminderWorker
from server.services import SERVICES, Services
from server.settings import Settings
from server.store.bus import Bus
from server.store.connection import UNAVAILABLE, Redis, RedisProbe, connect
from server.store.nodes import NodeRegistry
from server.tasks import Background

log = logging.getLogger("porchlight")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSP = (
    "default-src 'self'; img-src 'self' https: data:; media-src 'self' blob:; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)


def _security_headers(response: web.StreamResponse, secure: bool) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self), geolocation=()")
    headers.setdefault("Cache-Control", "no-store")
    if secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


def _error_response(request: web.Request, error: ApiError) -> web.Response:
    return web.json_response(error.body(request.get(logs.REQUEST_ID)), status=error.status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    svc = request.app[SERVICES]
    started = time.perf_counter()
    try:
        response = await handler(request)
    except ApiError as exc:
        svc.metrics.error(exc.code)
        response = _error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED,
                413: ErrorCode.PAYLOAD_TOO_LARGE}.get(exc.status, ErrorCode.HTTP_ERROR)
        svc.metrics.error(code)
        response = _error_response(request, ApiError(exc.status, code, exc.reason))
        if "Allow" in exc.headers:  # a 405 names the methods the route has (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
    except UNAVAILABLE:
        log.warning("redis unavailable during %s %s", request.method, request.path)
        svc.metrics.error(ErrorCode.UNAVAILABLE)
        busy = ApiError(503, ErrorCode.UNAVAILABLE, "the service is temporarily unavailable; try again")
        response = _error_response(request, busy)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        svc.metrics.error(ErrorCode.INTERNAL_ERROR)
        response = _error_response(request, ApiError(500, ErrorCode.INTERNAL_ERROR, "something went wrong"))
    svc.metrics.http_responses.labels(status=f"{response.status // 100}xx").inc()
    if not isinstance(response, web.WebSocketResponse):  # its handler returns when the connection ends
        # The route's name, not the path: a path holds ids (and join tokens), one series each.
        route = request.match_info.route.name or "unmatched"
        svc.metrics.http_duration.labels(route=route).observe(time.perf_counter() - started)
    if not response.prepared:
        _security_headers(response, svc.settings.secure_cookies)
    return response


# The delivery workers, once started, with PORCHLIGHT_DELIVERY=inline (tests drive them).
DELIVERY = web.AppKey("delivery", DeliveryWorker)  # billing records
ALERT_DELIVERY = web.AppKey("alert_delivery", DeliveryWorker)  # safety_alert.raised events (measures/alerts.py)
REMINDER_DELIVERY = web.AppKey("reminder_delivery", DeliveryWorker)  # reminder.due events (reminders/webhook.py)
REMINDERS = web.AppKey("reminders", ReminderWorker)  # the reminder worker, once started (tests drive it)


def create_app(settings: Settings, redis: Redis | None = None, clock: Clock | None = None) -> web.Application:
    """The application. Without `redis`, it connects to settings.redis_url when started."""
    clock = clock or SystemClock()
    logs.install()
    app = web.Application(middlewares=[logs.request_ids, error_middleware], client_max_size=settings.max_json_bytes)
    app.on_response_prepare.append(logs.answer_request_id)
    client = redis or connect(settings.redis_url or "redis://127.0.0.1:6379/0", settings.redis_pool_size,
                              settings.redis_pool_timeout_seconds, settings.redis_timeout_seconds)
    metrics = Metrics()
    media = MediaRooms(settings.ice_servers, address=settings.media_address, media_port=settings.media_port)
    turn = Turn(settings.turn_urls, settings.turn_secret, settings.turn_ttl_seconds) if settings.turn_secret else None
    ice = IceServers(settings.ice_servers, turn, clock)  # each client's, with its own TURN credential
    node = NodeRegistry(client, new_id("node"), settings.media_address or urlparse(settings.public_url).hostname or "",
                        to_ms(clock.now()), to_ms(settings.node_timeout_seconds))
    metrics.node(node.node_id)
    count_packets(metrics, media)
    audit = AuditLog(client, clock)
    bus = Bus(client, node.node_id)
    # Queued records wake this process's workers (inline), or the delivery processes over Redis.
    elsewhere = None if settings.delivery == "inline" else client
    wakes = {channel: Wake(channel, elsewhere) for channel in (outbox.BILLING, alerts.CHANNEL, reminder_events.CHANNEL)}
    lobby = Lobby(client, clock, audit, metrics, settings.reconnect_grace_seconds, settings.auto_end_seconds,
                  media=media, ice_servers=ice,
                  check_ins_per_minute=settings.check_ins_per_minute, node=node, bus=bus,
                  tick_seconds=min(1.0, settings.node_timeout_seconds / 4),
                  min_attended_seconds=settings.min_attended_seconds, delivery_wake=wakes[outbox.BILLING],
                  alert_wake=wakes[alerts.CHANNEL])
    app[SERVICES] = Services(
        settings=settings,
        clock=clock,
        redis_probe=RedisProbe(client),
        hello_gate=HelloGate(settings.ws_before_hello_per_address, settings.ws_before_hello_max,
                             settings.hello_deadline_seconds),
        redis=client,
        metrics=metrics,
        audit=audit,
        staff_sessions=StaffSessions(client, settings.signing_keys, clock, settings.staff_idle_timeout_seconds,
                                     settings.staff_session_max_seconds),
        limiter=LoginLimiter(client, clock, LoginLimits(
            per_address=settings.login_max_failures_per_ip,
            per_user_at_address=settings.login_max_failures_per_user,
            window_seconds=settings.login_failure_window_seconds,
            lockout_seconds=settings.login_lockout_seconds,
            lockout_max_seconds=settings.login_lockout_max_seconds,
            user_slow_after=settings.login_slow_after_failures_per_user,
            user_slow_max_seconds=settings.login_slow_max_seconds,
        )),
        password_checks=PasswordChecks(settings.password_checks_at_once, settings.password_checks_queue),
        links=LinkSigner(settings.signing_keys, settings.public_url),
        lobby=lobby,
        background=Background(),
        relay=Relay(lobby, bus, clock),
    )
    app[TEMPLATES] = environment()
    setup_routes(app)
    app.router.add_static("/static", WEB_DIR / "static", name="static")

    async def redis_client(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[SERVICES].redis_probe.aclose()
        if redis is None:  # we opened it, we close it
            await client.aclose()

    async def deployment(app: web.Application) -> AsyncIterator[None]:
        """This process among the others: the bus, and the round of heartbeat, leases and moves
        (lobby/cluster.py, realtime/relay.py). The first round runs before any request."""
        svc = app[SERVICES]
        await bus.start()
        assert svc.lobby.cluster is not None
        with contextlib.suppress(*UNAVAILABLE):
            await svc.lobby.cluster.tick()
        task = svc.background.start(_deployment_rounds(svc), "deployment rounds")
        yield
        await _stopped("the deployment round", task)
        assert svc.lobby.cluster is not None
        with contextlib.suppress(*UNAVAILABLE):  # the others take over now, not after the lease lapses
            # Handing over thousands of sockets' groups can take longer than a step; the operator's
            # drain budget bounds it (PORCHLIGHT_DRAIN_SECONDS).
            await _within("the hand-off of this process's groups", svc.lobby.cluster.hand_off(),
                          seconds=max(SHUTDOWN_STEP_SECONDS, settings.drain_seconds))
        await _within("the bus", bus.stop())

    async def alive_marks(app: web.Application) -> AsyncIterator[None]:
        svc = app[SERVICES]
        task = svc.background.start(svc.lobby.keep_alive_marks(settings.heartbeat_interval_seconds), "alive marks")
        yield
        await _stopped("the alive marks", task)

    async def delivery(app: web.Application) -> AsyncIterator[None]:
        """PORCHLIGHT_DELIVERY=inline: the webhooks are sent from this process's event loop."""
        svc = app[SERVICES]
        events = {channel: wake.event for channel, wake in wakes.items()}
        workers = delivery_workers(svc.redis, svc.clock, svc.settings, svc.audit, svc.metrics, events)
        app[DELIVERY], app[ALERT_DELIVERY], app[REMINDER_DELIVERY] = workers
        tasks = [svc.background.start(worker.run(), f"{worker.channel} delivery") for worker in workers]
        yield
        for task in tasks:
            await _stopped("a delivery worker", task)

    async def reminders(app: web.Application) -> AsyncIterator[None]:
        svc = app[SERVICES]
        worker = app[REMINDERS] = ReminderWorker(svc.redis, svc.clock, svc.settings, svc.audit, svc.metrics,
                                                 delivery_wake=wakes[reminder_events.CHANNEL])
        task = svc.background.start(worker.run(), "reminders")
        yield
        await _stopped("the reminders", task)

    async def kept_csv_rows(app: web.Application) -> AsyncIterator[None]:
        """The CSV's kept rows of records written before they were kept (attendance/backfill.py)."""
        svc = app[SERVICES]
        task = svc.background.start(backfill.run(svc.redis), "attendance CSV rows")
        yield
        await _stopped("the CSV rows' fill", task)

    async def media_port(app: web.Application) -> AsyncIterator[None]:
        await media.open()  # PORCHLIGHT_MEDIA_PORT, if set; closed with the rooms (_close_media)
        yield

    app.cleanup_ctx.append(media_port)
    app.cleanup_ctx.append(redis_client)
    app.cleanup_ctx.append(deployment)
    app.cleanup_ctx.append(alive_marks)
    if settings.delivery == "inline":  # otherwise a delivery process sends them (server/deliver.py)
        app.cleanup_ctx.append(delivery)
    app.cleanup_ctx.append(reminders)
    app.cleanup_ctx.append(kept_csv_rows)
    app.on_shutdown.append(_close_websockets)
    app.on_cleanup.append(_close_media)
    return app


async def _deployment_rounds(svc: Services) -> None:
    cluster = svc.lobby.cluster
    assert cluster is not None
    while True:
        try:
            await svc.relay.tick()
            await asyncio.sleep(cluster.tick_seconds)
            await cluster.tick()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in one round must not stop the next ones
            log.exception("deployment round failed")
            await asyncio.sleep(cluster.tick_seconds)


def count_packets(metrics: Metrics, media: MediaRooms) -> None:
    """RTP packet counters that keep counting across a track's or a room's end (MediaRoom.stats()
    sums only the tracks alive now, and falls when one goes)."""

    def sources() -> Iterator[Source]:
        for room in list(media.rooms.values()):
            for member in list(room.members.values()):
                yield from list(member.sources.values())

    def outlets() -> Iterator[Outlet]:
        for source in sources():
            for forward in list(source.forwards):
                yield forward.outlet

    def viewer_tracks(state: str) -> Callable[[], float]:
        return lambda: sum(1 for source in sources() for forward in list(source.forwards) if forward.state == state)

    for state, meaning in (("waiting", "video waiting for a keyframe"), ("unready", "not negotiated or DTLS not up"),
                           ("held", "hidden by the viewer or paused for its bandwidth")):
        metrics.gauge(f"porchlight_media_viewer_tracks_{state}", f"Viewer tracks now {state}: {meaning}.",
                      viewer_tracks(state))
    packets_in = RunningTotal(sources, lambda source: source.packets)
    packets_out = RunningTotal(outlets, lambda outlet: outlet.sent)
    metrics.counter("porchlight_media_packets_in", "RTP packets received from publishers.", packets_in.read)
    metrics.counter("porchlight_media_packets_out", "RTP packets forwarded to viewers.", packets_out.read)
    keyframe_requests = RunningTotal(sources, lambda source: source.keyframe_requests)
    metrics.counter("porchlight_media_keyframe_requests", "Keyframe requests (PLI) sent to publishers.",
                    keyframe_requests.read)
    send_drops = RunningTotal(outlets, lambda outlet: outlet.dropped)
    metrics.counter("porchlight_media_send_drops", "RTP packets a viewer's socket could not take (dropped).",
                    send_drops.read)
    metrics.counter("porchlight_media_port_dropped",
                    "Datagrams on PORCHLIGHT_MEDIA_PORT from no known peer (not an authenticated ICE check), dropped.",
                    lambda: media.port.dropped if media.port is not None else 0)


SHUTDOWN_STEP_SECONDS = 10.0  # a step of shutting down that takes longer is left behind, and said so


async def _within(what: str, step: Awaitable[object], seconds: float = SHUTDOWN_STEP_SECONDS) -> None:
    """One step of shutting down, bounded: a process asked to stop must stop even if a step hangs
    (a Redis that does not answer, a connection that never closes)."""
    try:
        async with asyncio.timeout(seconds):
            await step
    except TimeoutError:
        log.warning("shutdown: %s did not finish within %g s; going on", what, seconds)


async def _stopped(what: str, task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await _within(what, task)


async def _close_media(app: web.Application) -> None:
    media = app[SERVICES].lobby.media
    if media is not None:
        await _within("closing the media rooms", media.close())


async def _close_websockets(app: web.Application) -> None:
    """On shutdown, tell every client and close; their drops are recorded as usual. After a
    SIGTERM (a restart or a move) the code is 1012, service restart: clients reconnect."""
    lobby = app[SERVICES].lobby
    code = 1012 if lobby.draining else 1001
    for door in list(lobby.doors.values()):
        # Sockets held by other processes stay open: the group moves, and they follow it (relay.py).
        door.close_all(code, "server restarting" if lobby.draining else "server shutting down", held_here_only=True)
    if lobby.node is not None:
        with contextlib.suppress(*UNAVAILABLE):
            await lobby.node.leave()
