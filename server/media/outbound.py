"""The send path of a viewer track: rewritten RTP, protected and written to the viewer's socket.

Each viewer track has a real `RTCRtpSender` (for SDP, SSRCs, sender reports and RTCP routing)
whose track never yields; an `Outlet` sends the forwarder's packets for it, as its sender would
have. Per packet it does the least it can: the viewer's socket, address and SRTP session are
looked up again only when ICE picks another pair, and its sink (sink.py: compiled where it could
be built) writes the header, protects the packet and sends it straight to the socket (a full
kernel buffer drops it, as a media server must, rather than queueing it behind the viewer). The
sender report's counters are handed to the sender at the room's tick (`report`), not per packet.
Like glue.py, this module reaches into aiortc's private internals; tests/test_media_glue.py
checks each name.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import RTCP_PSFB_APP, AnyRtcpPacket, RtcpPsfbPacket, unpack_remb_fci

from server.media.glue import ABS_SEND_TIME, negotiated_codecs
from server.media.packets import NTP_EPOCH
from server.media.sink import FANOUT, KEEP_SECONDS, Sink, SinkType, context

Remb = Callable[[int, list[int]], None]  # (bitrate in bps, the SSRCs it covers)

HISTORY = 512  # at most this many video packets kept per viewer track to answer NACKs (sink.py: for a second)


def ntp_now(now: float | None = None) -> int:
    """64-bit NTP time (of `now`, Unix seconds), as aiortc.clock.current_ntp_time() but without
    building datetimes."""
    now = time.time() if now is None else now
    seconds = int(now)
    return ((seconds + NTP_EPOCH) << 32) | int((now - seconds) * (1 << 32))


def watch_remb(sender: RTCRtpSender, on_remb: Remb) -> None:
    """The viewer's REMB (its receive-side bandwidth estimate) for this sender goes to `on_remb`;
    the rest of its RTCP to aiortc as before (aiortc's sender would only log a REMB: no encoder)."""
    original = sender._handle_rtcp_packet

    async def handle(packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            on_remb(bitrate, ssrcs)
            return
        await original(packet)

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]


class Outlet:
    """Sends already-rewritten RTP for one viewer track, as its aiortc sender would have."""

    def __init__(self, transceiver: RTCRtpTransceiver, on_keyframe_request: Callable[[], None],
                 on_remb: Remb | None = None) -> None:
        self.transceiver = transceiver
        sender = transceiver.sender
        self.sender = sender
        self.ssrc: int = sender._ssrc
        self.payload_type: int | None = None  # None: not bound to the viewer's negotiated codec yet
        # Packets out (with the counts and the history of what was sent, for NACKs).
        self.sink: SinkType = Sink(self.ssrc, HISTORY if transceiver.kind == "video" else 0)
        self.retransmitted = 0
        self.forgotten = 0  # NACKed packets too old to send again (a keyframe asked for instead)
        self.pair: Any = None  # the ICE pair, and the DTLS transport, the sink's route was set for
        self.dtls: Any = None
        self._loop = asyncio.get_running_loop()
        # RTCP from the viewer: PLI/FIR go upstream, NACKs are answered from the sink's history.
        sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]
        sender._retransmit = self._retransmit  # type: ignore[method-assign,assignment]
        if on_remb is not None:
            watch_remb(sender, on_remb)

    def retarget(self, on_keyframe_request: Callable[[], None]) -> None:
        """The viewer track now carries another source: new keyframe target, bind again once
        the viewer has accepted the renegotiated m-line."""
        self.sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]
        self.payload_type = None
        self.sink.unguard()

    def bind(self) -> bool:
        """Learn the payload types agreed with the viewer; False until negotiation is done."""
        if self.payload_type is not None:
            return True
        codecs = negotiated_codecs(self.transceiver)
        if not codecs or self.transceiver.currentDirection not in ("sendonly", "sendrecv"):
            return False
        self.payload_type = codecs[0].payloadType
        self.sink.payload_type = self.payload_type or 0  # negotiated codecs always have one
        extensions = self.transceiver._headerExtensions
        self.sink.send_time_id = next((e.id for e in extensions if e.uri == ABS_SEND_TIME), 0)
        return True

    @property
    def sent(self) -> int:
        return self.sink.sent

    @property
    def dropped(self) -> int:
        """Packets lost at the viewer's socket (its buffer full, or an ICMP error back)."""
        return self.sink.dropped

    def ready(self) -> bool:
        dtls = self.sender.transport
        return dtls is not None and dtls._state is DtlsState.CONNECTED and self.bind()

    def send(self, marker: int, sequence: int, timestamp: int, payload: bytes, wall: float) -> bool:
        """Send one RTP packet of this viewer track (`wall`: its arrival, Unix seconds); False if
        it could not go (the viewer's connection is not up, or its socket's buffer is full:
        dropped)."""
        dtls = self.sender._RTCRtpSender__transport  # type: ignore[attr-defined]  # the property, without its call
        if dtls is None or dtls._state is not DtlsState.CONNECTED:
            return False
        nominated = dtls.transport._connection._nominated
        pair = nominated.get(1)
        if pair is None:
            return False
        sink = self.sink
        if pair is not self.pair or dtls is not self.dtls:
            self._route(dtls, pair)
        if FANOUT is not None and not sink.guarded:  # the compiled fan-out sends on its own while these hold
            sink.guard(self.sender, dtls, nominated, pair, DtlsState.CONNECTED)
        return sink.send(marker, sequence, timestamp, payload, wall)

    def _route(self, dtls: Any, pair: Any) -> None:
        """How to reach the pair ICE nominated: its UDP socket (our own, or the shared media
        port's), else its transport's `sendto` (a TURN relay's), else its protocol's coroutine."""
        self.pair, self.dtls = pair, dtls
        transport = getattr(pair.protocol, "transport", None)
        transport = getattr(transport, "udp", transport)  # on the shared media port: its socket's transport
        sock = getattr(transport, "_sock", None)
        sock = sock if isinstance(sock, socket.socket) else None
        sendto: Callable[[bytes, Any], Any] | None = None
        if sock is None:
            sendto = getattr(transport, "sendto", None)  # a TURN allocation (aioice's TurnTransport)
        if sock is None and sendto is None:
            loop, protocol = self._loop, pair.protocol

            def sendto(data: bytes, address: Any) -> None:
                loop.create_task(protocol.send_data(data, address))

        session = dtls._tx_srtp
        self.sink.unguard()
        self.sink.route(session, context(session), sock, sendto, pair.remote_addr)

    def report(self) -> None:
        """What the next sender report says (the sender's own RTCP loop sends it): the last packet's
        RTP timestamp with its NTP time, and the counts (at the room's tick, not per packet). And
        how long packets stay kept for NACKs: 3 round trips (from the viewer's receiver reports)
        when that is over a second, as libwebrtc's sender."""
        sink = self.sink
        if not sink.sent:
            return
        sender = self.sender
        rtt = sender._RTCRtpSender__rtt  # type: ignore[attr-defined]
        sink.keep = KEEP_SECONDS if rtt is None else max(KEEP_SECONDS, 3 * rtt)
        sender._RTCRtpSender__ntp_timestamp = ntp_now(sink.last_wall)  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = sink.last_timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count = sink.sent  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count = sink.octets  # type: ignore[attr-defined]

    async def _retransmit(self, sequence: int) -> None:
        """A NACKed packet goes out again as it was (RTX is not negotiated: see negotiation.capability).
        One no longer kept for its age cannot complete the viewer's picture: the publisher is asked
        for a keyframe, as the viewer's PLI would (a browser asks itself once it gives up on the
        packet; aiortc's receivers only after 512 packets)."""
        dtls = self.sender.transport
        if dtls is None or dtls._state is not DtlsState.CONNECTED or self.pair is None:
            return
        now = time.time()
        if self.sink.resend(sequence, now):
            self.retransmitted += 1
        elif self.sink.forgotten(sequence, now):
            self.forgotten += 1
            self.sender._send_keyframe()  # set to the source's: rate-limited
