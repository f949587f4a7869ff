"""GET /api/v1/ws: the patient and staff realtime protocol.

The first frame must be `hello` and must arrive within a deadline. After that, frames are
parsed, checked and dispatched; a malformed or unknown frame gets `error` (bad_request) and
the socket stays open; an oversized one closes it (1009, by aiohttp's frame limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from server.auth.sessions import COOKIE_NAME, StaffSession
from server.auth.staff import can_run
from server.clinic import enrollments
from server.clinic.groups import get_group
from server.clinic.patients import get_patient
from server.errors import ApiError
from server.realtime.connection import (
    CLOSE_FLOOD,
    CLOSE_FORBIDDEN,
    CLOSE_HEARTBEAT,
    CLOSE_INVALID_TOKEN,
    Connection,
)
from server.realtime.frames import FrameError
from server.realtime.relay import Attachment
from server.requests import client_address, same_origin
from server.services import Services, services
from server.store.connection import UNAVAILABLE
from server.validation import an_id, parse_json

log = logging.getLogger(__name__)

LOCATIONS = ("home", "other")
STAFF_TOUCH_EVERY = 30.0  # seconds between idle-timer refreshes from WebSocket traffic


def parse_frame(raw: str) -> dict[str, Any]:
    try:
        frame = parse_json(raw)
    except ApiError as exc:
        raise FrameError(exc.code, exc.message) from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("bad_request", "frames must be objects with a string \"type\"")
    return frame


class FrameBudget:
    """A token bucket per connection: `rate` frames a second, `burst` at once.

    A frame over budget is not processed; the client is told once (`rate_limited`), and a
    client that keeps sending past a second burst is disconnected (1008).
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.at = now
        self.refused = 0  # frames refused since the last one taken

    def take(self, now: float) -> bool:
        self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.refused = 0
            return True
        self.refused += 1
        return False

    @property
    def flooding(self) -> bool:
        return self.refused > self.burst


class Client:
    """One accepted WebSocket: its connection, door and (for staff) session."""

    def __init__(self, svc: Services, conn: Connection, transport: Any) -> None:
        self.svc = svc
        self.conn = conn
        self.transport = transport
        self.attachment: Attachment | None = None  # the way to the group's door, once hello is accepted
        self.staff: StaffSession | None = None
        self.cookie: str | None = None
        self.last_touch = svc.clock.now()

    def error(self, code: str, message: str, close: int | None = None) -> None:
        self.svc.metrics.error(code)
        self.svc.metrics.ws_messages["out"] += 1
        self.conn.send({"type": "error", "code": code, "message": message})
        if close is not None:
            self.conn.close(close, code)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- hello ---------------------------------------------------------------------------

    async def hello(self, frame: dict[str, Any], request: web.Request) -> bool:
        if frame.get("type") != "hello":
            self.error("bad_request", "the first frame must be hello")
            return False
        if "token" in frame:
            return await self._patient_hello(frame)
        return await self._staff_hello(frame, request)

    async def _patient_hello(self, frame: dict[str, Any]) -> bool:
        svc = self.svc
        token, location = frame.get("token"), frame.get("location")
        if location is not None and location not in LOCATIONS:
            self.error("bad_request", "location: \"home\" or \"other\"")
            return False
        found = svc.links.read(token) if isinstance(token, str) else None
        enrollment = await enrollments.get_enrollment(svc.redis, found[0]) if found else None
        group = await get_group(svc.redis, enrollment["group_id"]) if enrollment else None
        if (
            found is None or enrollment is None or group is None
            or not enrollments.usable(enrollment, group, found[1], svc.clock.now())
        ):
            self.error("invalid_token", "this link is not valid; ask the clinic for a new one", CLOSE_INVALID_TOKEN)
            return False
        patient = await get_patient(svc.redis, enrollment["patient_id"])
        if patient is None:
            self.error("invalid_token", "this link is not valid", CLOSE_INVALID_TOKEN)
            return False
        self.conn.patient_id = patient["id"]
        self.conn.group_id = group["id"]
        who = {"kind": "patient", "patient_id": patient["id"], "display_name": patient["display_name"],
               "location": location}
        self.attachment = await svc.relay.join(self.conn, group["id"], who)
        return True

    async def _staff_hello(self, frame: dict[str, Any], request: web.Request) -> bool:
        svc = self.svc
        self.cookie = request.cookies.get(COOKIE_NAME)
        staff = await svc.staff_sessions.resume(self.cookie)
        if staff is None:
            self.error("unauthorized", "sign in first", CLOSE_INVALID_TOKEN)
            return False
        if not same_origin(request, svc.settings.public_url):
            # The cookie rides along with any page's WebSocket: only our own pages may use it.
            self.error("forbidden", "this page's origin may not open a staff connection", CLOSE_FORBIDDEN)
            return False
        session_id, group_id = frame.get("session_id"), frame.get("group_id")
        if (session_id is None) == (group_id is None):
            self.error("bad_request", "staff hello names a session_id or a group_id")
            return False
        try:
            if session_id is not None:
                session_id = an_id(session_id, "session_id")
                group_id = await svc.lobby.session_group(session_id)
            group_id = an_id(group_id, "group_id")
            group = await get_group(svc.redis, group_id)
            if group is None:
                raise ApiError(404, "not_found", "group not found")
            if not can_run(staff.user, group):
                self.error("forbidden", "you do not facilitate this group", CLOSE_FORBIDDEN)
                return False
            self.conn.user_id = staff.user.id
            self.conn.group_id = group_id
            who = {"kind": "staff", "user_id": staff.user.id, "name": staff.user.name, "role": str(staff.user.role),
                   "session_id": session_id}
            self.attachment = await svc.relay.join(self.conn, group_id, who)
        except ApiError as exc:
            self.conn.user_id = None
            self.error(exc.code, exc.message)
            return False
        self.staff = staff
        return True

    # -- after hello ---------------------------------------------------------------------

    async def dispatch(self, frame: dict[str, Any]) -> None:
        assert self.attachment is not None
        await self.attachment.dispatch(frame)

    async def gone(self) -> None:
        """The socket is finished: record the drop (if it still counts) and unregister."""
        attachment, self.attachment = self.attachment, None
        if attachment is not None:
            await attachment.gone()

    async def heartbeat(self) -> None:
        """Ping every interval; drop a client silent for longer than the timeout."""
        settings = self.svc.settings
        clock = self.svc.clock
        # A random phase per connection: after a burst of connections (a group arriving, a
        # restart) the pings spread over the interval instead of firing in one wave.
        await asyncio.sleep(random.uniform(0, settings.heartbeat_interval_seconds))
        while not self.conn.closing and not self.conn.ws.closed:
            await asyncio.sleep(settings.heartbeat_interval_seconds)
            now = clock.now()
            if now - self.conn.last_heard > settings.heartbeat_timeout_seconds:
                # Record the drop at the last moment heard, then cut the socket.
                with contextlib.suppress(*UNAVAILABLE):
                    await self.gone()
                self.conn.closing = True
                self.conn.close_code = CLOSE_HEARTBEAT
                self.abort()
                return
            if self.conn.closing or self.conn.ws.closed:
                return  # no ping after the close is queued (it would cross the client's close), or after the end
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await self.conn.ws.ping()
            if self.staff is not None:
                await self._keep_staff_session(now)

    async def _keep_staff_session(self, now: float) -> None:
        sessions = self.svc.staff_sessions
        if await sessions.resume(self.cookie, touch=False) is None:
            self.error("unauthorized", "your sign-in has ended", CLOSE_INVALID_TOKEN)
            return
        if self.conn.last_active > self.last_touch and now - self.last_touch >= STAFF_TOUCH_EVERY:
            assert self.staff is not None
            await sessions.touch(self.staff.token, now)
            self.last_touch = now


def compresses(request: web.Request) -> bool:
    """Whether this socket takes permessage-deflate when the client offers it: a staff page's,
    not a patient's.

    Every browser offers it, and a compressing socket holds its own zlib state: ~105 KB of the
    server's memory per socket that has received a frame (measured: 134 against 29 KB per
    waiting patient), and CPU for every frame sent, once per recipient, where a frame sent to
    many is otherwise encoded once. A patient's frames are small. A staff page's waiting list
    can be long and compresses ~10x; there are few staff sockets. Whether the staff cookie is
    there is all this looks at: a client that sends one without being staff only pays for its
    own socket, and who it is is decided by its hello as before. (Node's ws and engine.io leave
    the extension off by default on servers, for the same memory.)"""
    return COOKIE_NAME in request.cookies


async def websocket(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    if svc.lobby.draining:  # after SIGTERM: clients reconnect to another process, or to the next one
        raise ApiError(503, "unavailable", "this server is restarting; reconnect in a moment")
    # 429 before the upgrade when too many have not said hello
    ticket = svc.hello_gate.enter(client_address(request, svc.settings.trusted_proxies))
    settings = svc.settings
    ws = web.WebSocketResponse(max_msg_size=settings.max_ws_frame_bytes, autoping=False,
                               compress=compresses(request))
    await ws.prepare(request)
    conn = Connection(ws, svc.clock, settings.ws_send_queue, request.transport)
    client = Client(svc, conn, request.transport)
    beat = svc.background.start(client.heartbeat(), "socket heartbeat")
    try:
        await _serve(client, ws, request, lambda: svc.hello_gate.passed(ticket))
    except UNAVAILABLE:
        client.error("unavailable", "the service is temporarily unavailable", 1013)
    finally:
        beat.cancel()
        # The departure first: a heartbeat inside a Redis call may take its time to stop (under
        # load, a cancellation that meets the call's own timeout has been seen lost on Python 3.11,
        # the heartbeat going on), and the socket's end must not wait for it. Either one records
        # the departure, once (Client.gone).
        with contextlib.suppress(*UNAVAILABLE):
            await client.gone()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await beat
        await conn.finish()
        if not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()
    return ws


async def _serve(client: Client, ws: web.WebSocketResponse, request: web.Request,
                 on_hello: Callable[[], None]) -> None:
    svc = client.svc
    conn = client.conn
    loop = asyncio.get_running_loop()
    hello_deadline = loop.time() + svc.settings.hello_deadline_seconds
    accepted = False
    budget = FrameBudget(svc.settings.ws_frame_rate, svc.settings.ws_frame_burst, svc.clock.now())
    while not conn.closing:
        timeout = None if accepted else max(0.0, hello_deadline - loop.time())
        try:
            msg = await ws.receive(timeout=timeout) if timeout is not None else await ws.receive()
        except TimeoutError:
            client.error("hello_timeout", "no hello in time", 4400)
            return
        if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING) and not budget.take(svc.clock.now()):
            conn.heard()  # a flood is still a sign of life; it is just not acted on
            if budget.flooding:
                client.error("rate_limited", "too many frames; closing", CLOSE_FLOOD)
                return
            if budget.refused == 1:
                client.error("rate_limited", "too many frames; slow down (frames are being dropped)")
            continue
        if msg.type is WSMsgType.PING:
            conn.heard()
            await ws.pong(msg.data)
            continue
        if msg.type is WSMsgType.PONG:
            conn.heard()
            continue
        if msg.type is not WSMsgType.TEXT:
            if msg.type is WSMsgType.BINARY:
                client.error("bad_request", "frames must be JSON text")
                continue
            return  # CLOSE, CLOSING, CLOSED, ERROR (incl. oversized: aiohttp closed with 1009)
        conn.heard(active=True)
        svc.metrics.ws_messages["in"] += 1
        try:
            frame = parse_frame(msg.data)
            if not accepted:
                accepted = await client.hello(frame, request)
                if accepted:
                    on_hello()
            else:
                await client.dispatch(frame)
        except FrameError as exc:
            client.error(exc.code, exc.message)
        except ApiError as exc:
            client.error(exc.code, exc.message)
