"""The send path of one viewer track, per packet: its RTP header, SRTP, the viewer's socket.

`Sink` is the compiled one (`_sink.c`) where the package was built with a C compiler, otherwise
`PySink`, this module's pure-Python one: the same methods, the same bytes on the wire
(tests/test_media_sink.py sends through both and compares). The compiled one is the media
server's largest saving per forwarded packet: pylibsrtp's wrapper and `socket.sendto`'s argument
handling cost more than the encryption and the system call they wrap (bench/README.md).

A sink keeps what a viewer track's sender reports need (packets and payload octets sent, the last
RTP timestamp and when it arrived) and the packets it sent, to answer NACKs: their marker,
timestamp and payload (the publisher's, shared by every viewer of the packet), no copy and no
header; a packet sent again gets its header written again, with the abs-send-time of then, as
libwebrtc does. Audio keeps none (no browser NACKs Opus). A packet is kept for `keep` seconds
after it arrived (KEEP_SECONDS, longer on a long round trip: outbound.Outlet.report), and at most
the last `history` of them: libwebrtc's sender keeps its packets max(1 s, 3 x RTT), Janus 500 ms
by default. Ten seconds of a 12-person room's video held ~7 MB of payloads; one second, ~0.7 MB.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any, Protocol

from pylibsrtp import Session

from server.media.packets import header

log = logging.getLogger(__name__)

SendTo = Callable[[bytes, Any], Any]
Kept = tuple[int, int, bytes]  # (marker, timestamp, payload)

KEEP_SECONDS = 1.0  # libwebrtc's RtpPacketHistory: kMinPacketDurationMs


class SinkType(Protocol):
    ssrc: int
    payload_type: int
    send_time_id: int
    capacity: int  # at most this many packets kept for NACKs
    keep: float  # seconds each is kept
    sent: int
    dropped: int
    octets: int
    last_timestamp: int
    last_wall: float

    def route(self, session: Session, context: int, sock: socket.socket | None, sendto: SendTo | None,
              address: Any) -> None: ...

    def send(self, marker: int, sequence: int, timestamp: int, payload: bytes, wall: float) -> bool: ...

    def kept(self, sequence: int) -> Kept | None: ...

    def resend(self, sequence: int, wall: float) -> bool: ...

    def forgotten(self, sequence: int, wall: float) -> bool: ...

    @property
    def guarded(self) -> bool: ...

    def guard(self, sender: Any, dtls: Any, nominated: dict[int, Any], pair: Any, connected: Any) -> None: ...

    def unguard(self) -> None: ...


class PySink:
    """One viewer track's packets out: header, SRTP, socket (or `sendto`: a TURN relay's, or any
    other transport's)."""

    __slots__ = ("ssrc", "payload_type", "send_time_id", "capacity", "keep", "sent", "dropped", "octets",
                 "last_timestamp", "last_wall", "_history", "_oldest", "_session", "_sock", "_sendto",
                 "_address")

    def __init__(self, ssrc: int, history: int) -> None:
        if not 0 <= history <= 0x10000:
            raise ValueError("history must hold 0 to 65536 packets")
        self.ssrc = ssrc
        self.payload_type = 0
        self.send_time_id = 0  # the abs-send-time extension's id agreed with the viewer; 0: none
        self.capacity = history
        self.keep = KEEP_SECONDS
        # (sequence, marker, timestamp, payload, arrival) at sequence % capacity
        self._history: list[tuple[int, int, int, bytes, float] | None] = [None] * history
        self._oldest = 0  # the sequence number the next release of old packets starts from
        self.sent = self.dropped = self.octets = 0
        self.last_timestamp = 0
        self.last_wall = 0.0
        self._session: Session | None = None
        self._sock: socket.socket | None = None
        self._sendto: SendTo | None = None
        self._address: Any = None

    def route(self, session: Session, context: int, sock: socket.socket | None, sendto: SendTo | None,
              address: Any) -> None:
        """From now on, protect with `session` (`context`: its libsrtp context, for the compiled
        sink) and send to `address` through `sock`, else through `sendto(data, address)`."""
        if sock is None and sendto is None:
            raise ValueError("a route needs a socket or a sendto")
        self._session, self._sock, self._sendto, self._address = session, sock, sendto, address

    def send(self, marker: int, sequence: int, timestamp: int, payload: bytes, wall: float) -> bool:
        """Protect and send one packet (`wall`: its arrival, Unix seconds); False if it was lost
        (the socket's buffer is full, an ICMP error came back, the socket is closed)."""
        if not self._put(marker, sequence, timestamp, payload, wall):
            return False
        if self.capacity:
            self._history[sequence % self.capacity] = (sequence, marker, timestamp, payload, wall)
            if not self.sent:
                self._oldest = sequence
            self._release_old(sequence, wall - self.keep)
        self.sent += 1
        self.octets += len(payload)
        self.last_timestamp, self.last_wall = timestamp, wall
        return True

    def _release_old(self, newest: int, cutoff: float) -> None:
        """Release the kept packets that arrived before `cutoff`, oldest first, up to `newest`
        (just kept): sequence numbers go out in order, so the walk stops at the first young
        enough. Only the last `capacity` numbers can still be kept; an older packet left in a
        slot a gap skipped is old."""
        history, capacity, sequence = self._history, self.capacity, self._oldest
        if (newest - sequence) & 0xFFFF >= capacity:
            sequence = (newest - capacity + 1) & 0xFFFF
        while sequence != newest:
            kept = history[sequence % capacity]
            if kept is not None and kept[4] < cutoff:
                history[sequence % capacity] = None
            elif kept is not None and kept[0] == sequence:
                break
            sequence = (sequence + 1) & 0xFFFF
        self._oldest = sequence

    def kept(self, sequence: int) -> Kept | None:
        """What a NACK of this sequence number would send again, if it is still kept."""
        kept = self._history[sequence % self.capacity] if self.capacity else None
        return kept[1:4] if kept is not None and kept[0] == sequence else None

    def resend(self, sequence: int, wall: float) -> bool:
        """Send a kept packet again (a NACK), unless it arrived more than `keep` seconds before
        `wall`; not counted as sent (RFC 3550's counts are of new packets)."""
        kept = self._history[sequence % self.capacity] if self.capacity else None
        if kept is None or kept[0] != sequence or kept[4] < wall - self.keep:
            return False
        return self._put(kept[1], sequence, kept[2], kept[3], wall)

    def forgotten(self, sequence: int, wall: float) -> bool:
        """Whether a packet is no longer kept because of its age at `wall`: older than `keep`, or
        before the oldest still kept (released, or pushed out by `capacity` newer ones). Not a
        recent one that was never kept (lost before it reached the server, or at the socket)."""
        if not self.capacity or not self.sent:
            return False
        kept = self._history[sequence % self.capacity]
        if kept is not None and kept[0] == sequence:
            return kept[4] < wall - self.keep
        return 0 < (self._oldest - sequence) & 0xFFFF < 0x8000

    # `fanout`, which sends without asking Python while these hold, is the compiled sink's only.
    guarded = False

    def guard(self, sender: Any, dtls: Any, nominated: dict[int, Any], pair: Any, connected: Any) -> None:
        pass

    def unguard(self) -> None:
        pass

    def _put(self, marker: int, sequence: int, timestamp: int, payload: bytes, wall: float) -> bool:
        if self._session is None:
            raise RuntimeError("no route")
        head = header(marker, self.payload_type, sequence, timestamp, self.ssrc, self.send_time_id, wall)
        protected = self._session.protect(head + payload)
        try:
            if self._sock is not None:
                self._sock.sendto(protected, self._address)
            else:
                assert self._sendto is not None
                self._sendto(protected, self._address)
        except OSError:
            self.dropped += 1
            return False
        return True


Fanout = Callable[[list[Any], int, int, int, int, float, bytes, float], list[Any]]


API = 2  # the compiled module's interface this one expects (API in _sink.c)


def _compiled() -> Any:
    """The compiled module, given pylibsrtp's srtp_protect; None where it was not built, where
    PORCHLIGHT_MEDIA_SINK=python asks for the pure-Python sink, where it was built from older
    source, or where pylibsrtp's binding is not the one it was written for."""
    if os.environ.get("PORCHLIGHT_MEDIA_SINK", "").lower() == "python":
        return None
    try:
        from server.media import _sink  # type: ignore[attr-defined]
    except ImportError:
        return None
    if getattr(_sink, "API", 1) != API:
        log.warning("the compiled media sink was built from older source (reinstall to rebuild it); using Python's")
        return None
    protect = protect_address()
    if protect is None:
        log.warning("pylibsrtp's srtp_protect is not the one the compiled media sink expects; using Python's")
        return None
    _sink.use_protect(protect)
    return _sink


PROTECT_TYPE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"  # libsrtp 2's


def protect_address() -> int | None:
    """The address of libsrtp's srtp_protect in pylibsrtp's binding, if its type is libsrtp 2's."""
    from pylibsrtp._binding import ffi, lib

    function = ffi.addressof(lib, "srtp_protect")
    if ffi.getctype(ffi.typeof(function)) != PROTECT_TYPE:
        return None
    return int(ffi.cast("uintptr_t", function))


def context(session: Session) -> int:
    """The libsrtp context of a pylibsrtp session (kept alive by the session)."""
    from pylibsrtp._binding import ffi

    return int(ffi.cast("uintptr_t", session._srtp[0]))


_COMPILED_MODULE = _compiled()
COMPILED: Callable[[int, int], SinkType] | None = None if _COMPILED_MODULE is None else _COMPILED_MODULE.Sink
Sink: Callable[[int, int], SinkType] = COMPILED or PySink
# fanout(forwards, sequence, timestamp, ssrc, marker, now, payload, wall): one received packet to
# every viewer track whose run goes on (tracks.Forward.send's work, for a packet of the SSRC the
# viewer track is already sending, over a guarded route); the forwards it leaves (a run to start
# or change, a route to find, a sink not guarded) are returned for the Python path.
FANOUT: Fanout | None = None if _COMPILED_MODULE is None else _COMPILED_MODULE.fanout
