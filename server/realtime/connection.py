"""One client's WebSocket: a bounded outbound queue drained by its own writer task.

A client that cannot keep up fills its queue and is disconnected (close code 1008); the
server never buffers without limit. Frames and the final close go through the same queue,
so a client always receives the frame explaining why before the close.

A frame for a socket with nothing queued, nothing in flight and little unsent is written at
once, as WebSocket bytes built once for every socket it goes to (`wire`): a roster to the 200
people of a session costs 2 ms of the event loop this way against 6 ms through 200 writer
tasks. Otherwise it waits its turn in the queue. Sockets that compress always queue: their
frames differ per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from typing import Any

from aiohttp import web

from server.clock import Clock
from server.lobby.peer import CLOSE_FORBIDDEN, CLOSE_INVALID_TOKEN, CLOSE_REPLACED

__all__ = ["CLOSE_FORBIDDEN", "CLOSE_INVALID_TOKEN", "CLOSE_REPLACED", "Connection", "encode"]

CLOSE_TOO_SLOW = 1008
CLOSE_FLOOD = 1008  # policy violation: more frames than a client may send
CLOSE_HEARTBEAT = 4408
# Bytes a socket may have waiting in its transport for a frame to be written straight to it;
# past this, frames queue (and a full queue disconnects).
DIRECT_WRITE_LIMIT = 64 * 1024


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def wire(text: str) -> bytes:
    """`text` as one unmasked, uncompressed WebSocket text frame (RFC 6455 5.2), as a server
    sends it. The last text's bytes are kept: a frame broadcast to many is the same str object
    for each socket, so it is encoded once."""
    global _last_text, _last_wire
    if text is _last_text:
        return _last_wire
    payload = text.encode()
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    _last_text, _last_wire = text, head + payload
    return _last_wire


_last_text: str | None = None
_last_wire = b""


class _Close:
    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class Connection:
    def __init__(self, ws: web.WebSocketResponse, clock: Clock, queue_size: int,
                 transport: asyncio.Transport | None = None) -> None:
        """`transport`: the socket's own, for frames written at once (None: all through the
        writer task; always None for a socket that compresses)."""
        self.ws = ws
        self._transport = None if ws.compress else transport
        self._in_flight = False  # the writer has taken a frame it has not finished sending
        self.clock = clock
        self.last_heard = clock.now()
        # The last frame the client sent on purpose (not a pong): what a staff member's idle
        # timer counts, since a browser answers pings by itself even in a forgotten tab.
        self.last_active = self.last_heard
        self._queue: asyncio.Queue[str | _Close] = asyncio.Queue(maxsize=queue_size)
        self._writer = asyncio.create_task(self._write())
        self.closing = False
        self.close_code: int | None = None
        # Set by the lobby: who this is, once `hello` has been accepted.
        self.patient_id: str | None = None
        self.user_id: str | None = None
        self.group_id: str | None = None
        self.replaced = False
        self.told_admitted = False  # the `admitted` frame has been sent on this connection
        self.sent = 0

    def heard(self, active: bool = False) -> None:
        self.last_heard = self.clock.now()
        if active:
            self.last_active = self.last_heard

    def send(self, message: dict[str, Any]) -> None:
        """Queue a frame; never blocks. A full queue disconnects the client."""
        self.send_text(encode(message))

    def send_text(self, text: str) -> None:
        """Queue an already encoded frame (one encoding for a frame sent to many)."""
        if self.closing:
            return
        transport = self._transport
        if (transport is not None and not self._in_flight and self._queue.empty() and not self.ws.closed
                and not transport.is_closing() and transport.get_write_buffer_size() <= DIRECT_WRITE_LIMIT):
            transport.write(wire(text))
            self.sent += 1
            return
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            self._abort(CLOSE_TOO_SLOW)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close after the frames already queued have been sent."""
        if self.closing:
            return
        self.closing = True
        self.close_code = code
        try:
            self._queue.put_nowait(_Close(code, reason))
        except asyncio.QueueFull:
            self._abort(code)

    def _abort(self, code: int) -> None:
        self.closing = True
        self.close_code = code
        self._writer.cancel()
        asyncio.ensure_future(self.ws.close(code=code))

    async def _write(self) -> None:
        while True:
            item = await self._queue.get()
            if isinstance(item, _Close):
                await self.ws.close(code=item.code, message=item.reason.encode())
                return
            self._in_flight = True
            try:
                await self.ws.send_str(item)
                self.sent += 1
            except (ConnectionResetError, RuntimeError):
                return
            finally:
                self._in_flight = False

    async def finish(self, flush_timeout: float = 2.0) -> None:
        """Once the socket is done: let a queued close go out, then stop the writer."""
        if self.closing and not self._writer.done():
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(self._writer), flush_timeout)
        self.closing = True
        if not self._writer.done():
            self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._writer
