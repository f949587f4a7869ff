"""Everything that reaches into aiortc's private internals, in one place.

aiortc is pinned (pyproject.toml) because this module depends on names it does not promise:
the receiver's packet handler and RTCP state, the sender's SSRCs, counters and retransmission
hook, the DTLS transport's SRTP session and the ICE connection's selected pair.
tests/test_media_glue.py checks each of them, so an upgrade that moves one fails loudly there
instead of silently in a session.

The path a packet takes: the publisher's DTLS transport decrypts and parses it and calls the
receiver's `_handle_rtp_packet`; `tap_receiver` replaces that handler with one that keeps
aiortc's receive statistics (for receiver reports), NACK generator and bitrate estimate but
skips depacketising, the jitter buffer and the decoder, and hands the packet on. Each viewer
track has a real `RTCRtpSender` (for SDP, SSRCs, sender reports and RTCP routing) whose track
never yields; an `Outlet` sends rewritten packets for it: SRTP-protected with the viewer's
DTLS session and written to its selected ICE pair.

With PORCHLIGHT_MEDIA_PORT, `share_port` gives a server peer connection's ICE agent its host
candidates on the process's one media port (port.py) instead of a socket of its own.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
import time
from collections.abc import Callable
from typing import Any

import aioice.ice
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver, codecs
from aiortc.codecs import is_rtx
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
    unwrap_rtx,
)

from server.media.port import MediaPort, PortTransport

Deliver = Callable[[RtpPacket, RTCRtpCodecParameters], None]
Remb = Callable[[int, list[int]], None]  # (bitrate in bps, the SSRCs it covers)

HISTORY = 512  # packets kept per viewer track to answer NACKs
WRITE_BUFFER_LIMIT = 256 * 1024  # bytes queued on a viewer's socket before packets are dropped


NTP_EPOCH = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)


def ntp_now() -> int:
    """64-bit NTP time, as aiortc.clock.current_ntp_time() but without building datetimes."""
    now = time.time()
    seconds = int(now)
    return ((seconds + NTP_EPOCH) << 32) | int((now - seconds) * (1 << 32))


def allow_loopback_candidates(address: str | None = None) -> None:
    """Offer 127.0.0.1 as a host candidate too (aioice leaves it out), so `lo` alone works; with
    `address` (PORCHLIGHT_MEDIA_ADDRESS), offer that address (and loopback) instead of every
    address of the machine, so clients reach this process where the operator says it is."""
    original = getattr(aioice.ice.get_host_addresses, "porchlight_original", aioice.ice.get_host_addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = [address] if address else original(use_ipv4, use_ipv6)
        if use_ipv4 and "127.0.0.1" not in addresses:
            addresses.append("127.0.0.1")
        return addresses

    host_addresses.porchlight_original = original  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = host_addresses


def host_addresses() -> list[str]:
    """The addresses a connection gathers host candidates on (after allow_loopback_candidates)."""
    return aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)


class PortProtocol(aioice.ice.StunProtocol):
    """aioice's protocol for one host candidate, on the shared media port: the port's
    demultiplexer feeds it; media (not STUN) skips aioice's STUN parse attempt."""

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        if data[0] > 3:  # type: ignore[operator]  # DTLS, SRTP or SRTCP (RFC 7983)
            self.receiver.data_received(data, self.local_candidate.component)  # type: ignore[arg-type]
        else:
            super().datagram_received(data, addr)


UFRAG_ALPHABET = string.ascii_letters + string.digits


def share_port(pc: RTCPeerConnection, port: MediaPort) -> None:
    """The connection's ICE agent gathers its host candidates on `port` (see `put_on_port`)."""
    create = pc._RTCPeerConnection__createDtlsTransport  # type: ignore[attr-defined]

    def create_dtls_transport() -> Any:
        dtls = create()
        put_on_port(dtls.transport.iceGatherer._connection, port)
        return dtls

    pc._RTCPeerConnection__createDtlsTransport = create_dtls_transport  # type: ignore[attr-defined]


def put_on_port(connection: aioice.Connection, port: MediaPort) -> None:
    """Before it gathers: `connection`'s host candidates go on `port`, with a ufrag long enough
    to be unique there (aioice's four characters collide among a few thousand connections)."""
    connection._local_username = "".join(secrets.choice(UFRAG_ALPHABET) for _ in range(16))
    gather = connection.get_component_candidates

    async def get_component_candidates(  # aioice's signature
            component: int, addresses: list[str], timeout: int = 5) -> list[Candidate]:  # noqa: ASYNC109
        return await _gather_on_port(connection, port, gather, component, addresses, timeout)

    connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]


async def _gather_on_port(connection: aioice.Connection, port: MediaPort, gather: Any, component: int,
                          addresses: list[str], seconds: int) -> list[Candidate]:
    """aioice's gathering, with host candidates on the port's sockets (no socket of their own);
    server-reflexive ones (a STUN server) of those, and a TURN relay as aioice makes it."""
    protocols = []
    for address in addresses:
        demultiplexer = port.sockets.get(address)
        if demultiplexer is None:
            continue  # not on the port: offering it would open another
        protocol = PortProtocol(connection)
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", address), component=component, transport="udp",
            priority=candidate_priority(component, "host"), host=address, port=port.port, type="host")
        protocol.connection_made(PortTransport(demultiplexer, connection.local_username, protocol))  # type: ignore[arg-type]
        demultiplexer.attach(connection.local_username, connection.local_password, protocol)
        protocols.append(protocol)
    connection._protocols += protocols
    candidates = [p.local_candidate for p in protocols]
    reflexive = [asyncio.wait_for(aioice.ice.server_reflexive_candidate(p, connection.stun_server), seconds)
                 for p in protocols if connection.stun_server and ":" not in p.local_candidate.host]
    results = await asyncio.gather(gather(component=component, addresses=[], timeout=seconds), *reflexive,
                                   return_exceptions=True)
    relayed, found = results[0], results[1:]
    if isinstance(relayed, list):
        candidates += relayed
    candidates += [result[0] for result in found if not isinstance(result, BaseException)]
    return candidates


ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
RID_EXTENSIONS = ("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
                  "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id")


def accept_simulcast() -> None:
    """Let aiortc negotiate and read the RID header extensions (each simulcast layer's packets
    name their layer), and route packets of SSRCs no a=ssrc line announced by their MID
    extension: simulcast offers announce none, and aiortc's router would otherwise guess by
    payload type, which fails once a screen share's section has the same ones."""
    video = codecs.HEADER_EXTENSIONS["video"]
    for number, uri in enumerate(RID_EXTENSIONS, start=10):
        if all(extension.uri != uri for extension in video):
            video.append(RTCRtpHeaderExtensionParameters(id=number, uri=uri))
    route = RtpRouter.route_rtp
    if getattr(route, "porchlight_mid", False):
        return

    def route_rtp(router: RtpRouter, packet: RtpPacket) -> Any:
        receiver = route(router, packet)
        mid = packet.extensions.mid
        if receiver is None and mid is not None and packet.ssrc not in router.ssrc_table:
            receiver = router.mid_table.get(mid)
            if receiver is not None:
                router.ssrc_table[packet.ssrc] = receiver
        return receiver

    route_rtp.porchlight_mid = True  # type: ignore[attr-defined]
    RtpRouter.route_rtp = route_rtp  # type: ignore[method-assign,assignment]


def send_times_on_audio() -> None:
    """Negotiate abs-send-time on audio too (aiortc offers it on video only): viewers' receive-side
    estimates (REMB) then count the audio they receive, which the server pays for first; counted
    on video alone, an estimate bounded by what arrives would shrink each time video is cut."""
    audio = codecs.HEADER_EXTENSIONS["audio"]
    if all(extension.uri != ABS_SEND_TIME for extension in audio):
        audio.append(RTCRtpHeaderExtensionParameters(id=3, uri=ABS_SEND_TIME))  # video's id: one id space


class HeldTrack(MediaStreamTrack):
    """A track that never yields a frame: its sender's own RTP loop waits forever, idle."""

    def __init__(self, kind: str, track_id: str) -> None:
        super().__init__()
        self.kind = kind
        self._id = track_id

    async def recv(self) -> Any:
        await asyncio.get_running_loop().create_future()


def set_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    """The msid stream id of one sender (aiortc gives all senders of a connection the same one)."""
    sender._stream_id = stream_id


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs agreed for a transceiver, preferred first (set by offer/answer)."""
    return list(getattr(transceiver, "_codecs", []))


def stop_decoding(receiver: RTCRtpReceiver) -> None:
    """aiortc starts a decoder thread in receive(); the forwarding path never feeds it."""
    original = receiver.receive

    async def receive(parameters: Any) -> None:
        await original(parameters)
        receiver._RTCRtpReceiver__stop_decoder()  # type: ignore[attr-defined]

    receiver.receive = receive  # type: ignore[method-assign]


def tap_receiver(receiver: RTCRtpReceiver, deliver: Deliver, estimate_bandwidth: bool = True) -> None:
    """Hand every incoming RTP packet (RTX unwrapped) to `deliver` instead of the decoder.

    With `estimate_bandwidth`, aiortc's receive-side estimate runs and REMB goes back to the
    sender (the server keeps it so publishers adapt to their uplink)."""
    by_type: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
    rtx_ssrc: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
    streams: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    nacks: dict[int, NackGenerator] | None = (  # one per SSRC: simulcast layers number apart
        {} if receiver._RTCRtpReceiver__nack_generator is not None else None)  # type: ignore[attr-defined]
    estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator if estimate_bandwidth else None  # type: ignore[attr-defined]
    layers: dict[str, int] = {}  # simulcast: RID -> the SSRC of its layer, from the RID extension

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        if not receiver._enabled:
            return
        if estimator is not None and packet.extensions.abs_send_time is not None:
            # Bitrate estimation and REMB feedback to the publisher, as aiortc does it.
            remb = estimator.add(
                abs_send_time=packet.extensions.abs_send_time, arrival_time_ms=arrival_time_ms,
                payload_size=len(packet.payload) + packet.padding_size, ssrc=packet.ssrc)
            if remb is not None:
                await _send_remb(receiver, remb)
        codec = by_type.get(packet.payload_type)
        if codec is None:
            return
        stats = streams.get(packet.ssrc)
        if stats is None:
            stats = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)
        if (rid := packet.extensions.rtp_stream_id) is not None:
            layers[rid] = packet.ssrc
        if is_rtx(codec):
            original_ssrc = rtx_ssrc.get(packet.ssrc)
            if original_ssrc is None and (repaired := packet.extensions.repaired_rtp_stream_id) in layers:
                original_ssrc = rtx_ssrc[packet.ssrc] = layers[repaired]  # a simulcast layer's RTX
            apt = codec.parameters.get("apt")
            if original_ssrc is None or len(packet.payload) < 2 or not isinstance(apt, int) or apt not in by_type:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = by_type[apt]
        if nacks is not None:
            nack = nacks.get(packet.ssrc)
            if nack is None:
                nack = nacks[packet.ssrc] = NackGenerator()
            if nack.add(packet):
                await receiver._send_rtcp_nack(packet.ssrc, sorted(nack.missing))
        try:
            deliver(packet, codec)
        except Exception:  # never let a forwarding bug end the publisher's DTLS receive loop
            logging.getLogger(__name__).exception("a received packet could not be handled")

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]


async def _send_remb(receiver: RTCRtpReceiver, remb: tuple[int, list[int]]) -> None:
    rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
    if rtcp_ssrc is not None:
        await receiver._send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0,
                                                 fci=pack_remb_fci(*remb)))


async def request_keyframe(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send a PLI for the publisher's stream."""
    await receiver._send_rtcp_pli(media_ssrc)


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
        self.payload_type: int | None = None
        self.send_time_id = 0  # the abs-send-time extension's id agreed with the viewer, 0: none
        self.history: dict[int, bytes] = {}
        self.sent = 0
        self.dropped = 0
        self.retransmitted = 0
        self._octets = 0
        self._loop = asyncio.get_running_loop()
        # RTCP from the viewer: PLI/FIR go upstream, NACKs are answered from `history`.
        sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]
        sender._retransmit = self._retransmit  # type: ignore[method-assign,assignment]
        if on_remb is not None:
            watch_remb(sender, on_remb)

    def retarget(self, on_keyframe_request: Callable[[], None]) -> None:
        """The viewer track now carries another source: new keyframe target, bind again once
        the viewer has accepted the renegotiated m-line."""
        self.sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]
        self.payload_type = None

    def bind(self) -> bool:
        """Learn the payload types agreed with the viewer; False until negotiation is done."""
        if self.payload_type is not None:
            return True
        codecs = negotiated_codecs(self.transceiver)
        if not codecs or self.transceiver.currentDirection not in ("sendonly", "sendrecv"):
            return False
        self.payload_type = codecs[0].payloadType
        extensions = self.transceiver._headerExtensions
        self.send_time_id = next((e.id for e in extensions if e.uri == ABS_SEND_TIME), 0)
        return True

    def ready(self) -> bool:
        dtls = self.sender.transport
        return dtls is not None and dtls._state is DtlsState.CONNECTED and self.bind()

    def send(self, sequence: int, timestamp: int, data: bytes) -> bool:
        """Protect and send one RTP packet; False if the viewer's socket is backed up (dropped)."""
        dtls = self.sender.transport
        if dtls is None or dtls._state is not DtlsState.CONNECTED:
            return False
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            return False
        protocol = pair.protocol
        # A UDP socket, or a TURN allocation (aioice's TurnTransport: sendto, no write buffer).
        udp = getattr(protocol, "transport", None)
        queued = getattr(udp, "get_write_buffer_size", None)
        if queued is not None and queued() > WRITE_BUFFER_LIMIT:
            self.dropped += 1
            return False
        protected = dtls._tx_srtp.protect(data)
        if udp is not None:
            udp.sendto(protected, pair.remote_addr)
        else:  # any other transport: its send path is a coroutine
            self._loop.create_task(protocol.send_data(protected, pair.remote_addr))
        self.history[sequence % HISTORY] = data
        self.sent += 1
        self._octets += len(data) - (20 if data[0] & 0x10 else 12)  # payload octets: not the header
        # Sender reports come from the aiortc sender's own RTCP loop: give it our counters.
        sender = self.sender
        sender._RTCRtpSender__ntp_timestamp = ntp_now()  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count = self.sent  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count = self._octets  # type: ignore[attr-defined]
        return True

    async def _retransmit(self, sequence: int) -> None:
        """A NACKed packet goes out again as it was (RTX is not negotiated: see negotiation.capability)."""
        data = self.history.get(sequence % HISTORY)
        if data is None or int.from_bytes(data[2:4], "big") != sequence:
            return
        self.retransmitted += 1
        dtls = self.sender.transport
        if dtls is not None and dtls._state is DtlsState.CONNECTED:
            await dtls._send_rtp(data)
