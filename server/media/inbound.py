"""The receive path of a publish connection: SRTP from the ICE connection to the source, lean.

aiortc's own path for one RTP packet: the ICE connection queues the datagram; the DTLS
transport's receive task wakes, decrypts it, parses the whole packet (every header extension into
objects, the time from datetimes), routes it and awaits the receiver's handler, which awaits each
of its own steps. That is a queue hand-off, a task wake-up and half a dozen coroutines per packet,
most of what a forwarded packet cost the server (bench/README.md, issue 13). Here:

- `listen` puts a function in front of the ICE connection's queue: SRTP (RFC 7983's first byte;
  not SRTCP) on a connected DTLS transport is decrypted at once, its header read by hand
  (`parse`: only the extensions the forwarder uses) and handed to its receiver's `Tap`, in the
  same call: no queue, no task;
- everything else (DTLS, SRTCP, media before the handshake ends) is queued for aiortc as before;
- a packet of an SSRC the router does not know yet (a simulcast layer's first packets, routed by
  their MID) goes aiortc's full way, which learns the SSRC; the packets after it come here.

A `Tap` does what aiortc's receiver did that the forwarder needs: the receive statistics (its
receiver reports), the NACK generator, the bitrate estimate with REMB back to the publisher, RTX
unwrapping; not the jitter buffer or the decoder. Like glue.py, this module reaches into aiortc's
private internals; tests/test_media_glue.py checks each name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pylibsrtp
from aiortc import RTCDtlsTransport, RTCRtpReceiver
from aiortc.codecs import is_rtx
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import RTCP_PSFB_APP, HeaderExtensions, RtcpPsfbPacket, RtpPacket, pack_remb_fci

from server.media.estimate import Estimator
from server.media.packets import EXTENSION, HEADER, NTP_EPOCH

log = logging.getLogger(__name__)

NTP_EPOCH_MS = NTP_EPOCH * 1000  # aiortc's arrival times count from 1900, in milliseconds
REMB_INTERVAL_MS = 200  # an estimate goes back to the publisher at most this often...
REMB_DROP = 0.97  # ...unless it fell below this much of the last one sent: then at once (libwebrtc's rule)


class Packet:
    """One received RTP packet, as much of it as forwarding reads."""

    __slots__ = ("payload_type", "marker", "sequence_number", "timestamp", "ssrc", "payload", "padding_size",
                 "abs_send_time", "audio_level", "rtp_stream_id", "repaired_rtp_stream_id", "mid")

    def __init__(self, payload_type: int, marker: int, sequence_number: int, timestamp: int, ssrc: int,
                 payload: bytes = b"") -> None:
        self.payload_type = payload_type
        self.marker = marker
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
        self.padding_size = 0
        self.abs_send_time: int | None = None
        self.audio_level: tuple[bool, int] | None = None  # RFC 6464: (voice activity, level in -dBov)
        self.rtp_stream_id: str | None = None  # simulcast: the layer's RID
        self.repaired_rtp_stream_id: str | None = None  # the RID an RTX packet repairs
        self.mid: str | None = None

    @classmethod
    def of(cls, packet: RtpPacket) -> Packet:
        """aiortc's parsed packet, as forwarding reads it."""
        taken = cls(packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp, packet.ssrc,
                    packet.payload)
        taken.padding_size = packet.padding_size
        extensions = packet.extensions
        taken.abs_send_time = extensions.abs_send_time
        taken.audio_level = extensions.audio_level
        taken.rtp_stream_id = extensions.rtp_stream_id
        taken.repaired_rtp_stream_id = extensions.repaired_rtp_stream_id
        taken.mid = extensions.mid
        return taken


def parse(data: bytes, ids: HeaderExtensions) -> Packet | None:
    """An RTP packet's header read by hand (RFC 3550, RFC 8285 extensions with the ids agreed in
    SDP, `ids`); None if it is malformed, where aiortc's parser raises."""
    size = len(data)
    if size < 12:
        return None
    first, second, sequence, timestamp, ssrc = HEADER.unpack_from(data)
    if first >> 6 != 2:
        return None
    packet = Packet(second & 0x7F, second >> 7, sequence, timestamp, ssrc)
    pos = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if pos + 4 > size:
            return None
        profile, words = EXTENSION.unpack_from(data, pos)
        pos += 4
        end = pos + 4 * words
        if end > size or not _read_extensions(packet, profile, data, pos, end, ids):
            return None
        pos = end
    end = size
    if first & 0x20:
        padding = data[-1]
        if padding == 0 or pos + padding > size:
            return None
        end -= padding
        packet.padding_size = padding
    if pos > end:
        return None
    packet.payload = data[pos:end]
    return packet


def _read_extensions(packet: Packet, profile: int, data: bytes, pos: int, end: int, ids: HeaderExtensions) -> bool:
    """RFC 8285's one-byte (0xBEDE) and two-byte (0x100x) forms; False if one is truncated or
    does not decode."""
    if profile == 0xBEDE:
        two_byte = False
    elif profile & 0xFFF0 == 0x1000:
        two_byte = True
    else:
        return True  # another profile: nothing here for us
    while pos < end:
        byte = data[pos]
        if byte == 0:  # padding
            pos += 1
            continue
        if two_byte:
            if pos + 2 > end:
                return False
            number, length = byte, data[pos + 1]
            pos += 2
        else:
            number, length = byte >> 4, (byte & 0x0F) + 1
            if number == 15:
                break  # RFC 8285: stop reading
            pos += 1
        if pos + length > end:
            return False
        try:
            if number == ids.abs_send_time and length == 3:
                packet.abs_send_time = int.from_bytes(data[pos:pos + 3], "big")
            elif number == ids.audio_level and length >= 1:
                level = data[pos]
                packet.audio_level = (level & 0x80 == 0x80, level & 0x7F)
            elif number == ids.rtp_stream_id:
                packet.rtp_stream_id = data[pos:pos + length].decode("ascii")
            elif number == ids.repaired_rtp_stream_id:
                packet.repaired_rtp_stream_id = data[pos:pos + length].decode("ascii")
            elif number == ids.mid:
                packet.mid = data[pos:pos + length].decode("utf8")
        except UnicodeDecodeError:
            return False
        pos += length
    return True


Deliver = Callable[[Packet, RTCRtpCodecParameters], None]


class RembThrottle:
    """When a new receive-side estimate goes back to the publisher (REMB), as libwebrtc's
    RembThrottler does it: a fall of more than 3% at once, otherwise at most every 200 ms.

    aiortc's estimator offers a new estimate with every packet while it detects overuse: without
    this, a congested publisher got one REMB per packet it sent."""

    __slots__ = ("sent_at", "sent")

    def __init__(self) -> None:
        self.sent_at: int | None = None
        self.sent = 0

    def due(self, bitrate: int, now_ms: int) -> bool:
        """Send this estimate now? (If so, it counts as sent.)"""
        if self.sent_at is not None and now_ms - self.sent_at < REMB_INTERVAL_MS and bitrate >= self.sent * REMB_DROP:
            return False
        self.sent_at, self.sent = now_ms, bitrate
        return True


class Tap:
    """One receiver's packets, to `deliver` instead of its decoder (see the module's docstring).

    With `estimate_bandwidth`, aiortc's receive-side estimate runs and REMB goes back to the
    sender (the server keeps it so publishers adapt to their uplink)."""

    def __init__(self, receiver: RTCRtpReceiver, deliver: Deliver, estimate_bandwidth: bool = True) -> None:
        self.receiver = receiver
        self.deliver = deliver
        self.by_type: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
        self.rtx_ssrc: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
        self.streams: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
        self.nacks: dict[int, NackGenerator] | None = (  # one per SSRC: simulcast layers number apart
            {} if receiver._RTCRtpReceiver__nack_generator is not None else None)  # type: ignore[attr-defined]
        # aiortc's estimate (its receivers have one for video), computed the same way in less
        # time; aiortc's own is dropped (glue.drop_estimate).
        video = receiver._RTCRtpReceiver__kind == "video"  # type: ignore[attr-defined]
        self.estimator = Estimator() if estimate_bandwidth and video else None
        self.layers: dict[str, int] = {}  # simulcast: RID -> the SSRC of its layer, from the RID extension
        self.feedback: set[asyncio.Task[None]] = set()  # RTCP (REMB, NACK) on its way to the publisher
        self.full_way = 0  # packets that came through aiortc's own path (a new SSRC, before DTLS was up)
        self.remb = RembThrottle()

    def take(self, packet: Packet, arrival_ms: int) -> None:
        """One packet, decrypted and parsed: statistics, feedback, then `deliver`."""
        receiver = self.receiver
        if not receiver._enabled:
            return
        if self.estimator is not None and packet.abs_send_time is not None:
            remb = self.estimator.add(abs_send_time=packet.abs_send_time, arrival_time_ms=arrival_ms,
                                      payload_size=len(packet.payload) + packet.padding_size, ssrc=packet.ssrc)
            if remb is not None and self.remb.due(remb[0], arrival_ms):
                self._send(_send_remb(receiver, remb))
        by_type = self.by_type
        codec = by_type.get(packet.payload_type)
        if codec is None:
            return
        stats = self.streams.get(packet.ssrc)
        if stats is None:
            stats = self.streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)  # type: ignore[arg-type]  # reads sequence_number and timestamp
        if (rid := packet.rtp_stream_id) is not None:
            self.layers[rid] = packet.ssrc
        if is_rtx(codec):
            unwrapped = self._unwrap(packet, codec)
            if unwrapped is None:
                return
            packet, codec = unwrapped
        if self.nacks is not None:
            nack = self.nacks.get(packet.ssrc)
            if nack is None:
                nack = self.nacks[packet.ssrc] = NackGenerator()
            if nack.add(packet):  # type: ignore[arg-type]  # reads sequence_number
                self._send(receiver._send_rtcp_nack(packet.ssrc, sorted(nack.missing)))
        self.deliver(packet, codec)

    def _unwrap(self, packet: Packet, codec: RTCRtpCodecParameters) -> tuple[Packet, RTCRtpCodecParameters] | None:
        """An RTX packet (RFC 4588) as the packet it repairs: the original sequence number first."""
        original_ssrc = self.rtx_ssrc.get(packet.ssrc)
        if original_ssrc is None and (repaired := packet.repaired_rtp_stream_id) in self.layers:
            original_ssrc = self.rtx_ssrc[packet.ssrc] = self.layers[repaired]  # a simulcast layer's RTX
        apt = codec.parameters.get("apt")
        payload = packet.payload
        if original_ssrc is None or len(payload) < 2 or not isinstance(apt, int) or apt not in self.by_type:
            return None
        repaired_packet = Packet(apt, packet.marker, (payload[0] << 8) | payload[1], packet.timestamp,
                                 original_ssrc, payload[2:])
        return repaired_packet, self.by_type[apt]

    async def handle(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """aiortc's own path (the receiver's handler): the packets that did not come the lean way."""
        self.full_way += 1
        try:
            self.take(Packet.of(packet), arrival_time_ms)
        except Exception:  # never let a forwarding bug end the publisher's DTLS receive loop
            log.exception("a received packet could not be handled")

    def _send(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self.feedback.add(task)
        task.add_done_callback(self.feedback.discard)


def tap_receiver(receiver: RTCRtpReceiver, deliver: Deliver, estimate_bandwidth: bool = True) -> Tap:
    """Hand every RTP packet `receiver` gets (RTX unwrapped) to `deliver` instead of its decoder,
    by the lean path (`listen`) and by aiortc's."""
    tap = Tap(receiver, deliver, estimate_bandwidth)
    receiver._handle_rtp_packet = tap.handle  # type: ignore[method-assign]
    listen(receiver.transport).taps[receiver] = tap
    return tap


class Listener:
    """The lean path of one DTLS transport: in front of its ICE connection's queue."""

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.dtls = dtls
        self.taps: dict[RTCRtpReceiver, Tap] = {}
        connection = dtls.transport._connection
        self.queue = connection.data_received  # aiortc's way: the DTLS transport's receive task
        self.ids: HeaderExtensions = dtls._rtp_header_extensions_map._HeaderExtensionsMap__ids  # type: ignore[attr-defined]
        self.router = dtls._rtp_router
        self.routing: set[asyncio.Task[None]] = set()  # packets of new SSRCs, going aiortc's full way
        self.taken = 0  # packets that came the lean way
        self.dropped = 0  # SRTP that did not authenticate, RTP that did not parse
        connection.data_received = self.data_received  # type: ignore[method-assign]

    def data_received(self, data: bytes, component: int) -> None:
        dtls = self.dtls
        srtp = dtls._rx_srtp
        if srtp is None or len(data) < 12 or not 127 < data[0] < 192 or 192 <= data[1] <= 208 \
                or dtls._state is not DtlsState.CONNECTED:
            self.queue(data, component)  # DTLS, SRTCP, or not ready: aiortc's way
            return
        dtls._RTCDtlsTransport__rx_bytes += len(data)  # type: ignore[attr-defined]  # its getStats()
        dtls._RTCDtlsTransport__rx_packets += 1  # type: ignore[attr-defined]
        try:
            plain = srtp.unprotect(data)
        except pylibsrtp.Error:
            self.dropped += 1
            return
        arrival_ms = int(time.time() * 1000) + NTP_EPOCH_MS
        packet = parse(plain, self.ids)
        if packet is None:
            self.dropped += 1
            return
        receiver = self.router.ssrc_table.get(packet.ssrc)
        tap = self.taps.get(receiver) if isinstance(receiver, RTCRtpReceiver) else None
        if tap is None:  # not routed yet: aiortc parses and routes it, and learns the SSRC
            task = asyncio.ensure_future(dtls._handle_rtp_data(plain, arrival_time_ms=arrival_ms))
            self.routing.add(task)
            task.add_done_callback(self.routing.discard)
            return
        self.taken += 1
        try:
            tap.take(packet, arrival_ms)
        except Exception:  # a forwarding bug must not reach the socket's reader
            log.exception("a received packet could not be handled")


def listen(dtls: RTCDtlsTransport) -> Listener:
    """The lean path in front of `dtls`'s ICE connection (once per transport)."""
    listener: Listener | None = getattr(dtls, "porchlight_listener", None)
    if listener is None:
        listener = Listener(dtls)
        dtls.porchlight_listener = listener  # type: ignore[attr-defined]
    return listener


async def _send_remb(receiver: RTCRtpReceiver, remb: tuple[int, list[int]]) -> None:
    rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
    if rtcp_ssrc is not None:
        await receiver._send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0,
                                                 fci=pack_remb_fci(*remb)))


async def request_keyframe(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send a PLI for the publisher's stream."""
    await receiver._send_rtcp_pli(media_ssrc)

