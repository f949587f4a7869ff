"""The reaches into aiortc's and aioice's private internals for negotiation and ICE, in one place.

aiortc and aioice are pinned (pyproject.toml) because the media plane depends on names they do
not promise. Three modules hold every such reach: this one (host candidates, the shared media
port, simulcast's header extensions and MID routing, the sender's stream id, the decoder that
never runs, the receivers' estimate that is not used), inbound.py (the receive path: the ICE
connection's queue, the DTLS transport's SRTP session and router, the receiver's statistics,
NACK and bitrate state) and outbound.py (the send path: the sender's transport, report counters,
round trip and retransmission hook, the ICE connection's nominated pair). tests/test_media_glue.py
checks each name they use, so an upgrade that moves one fails loudly there instead of silently in
a session.

With PORCHLIGHT_MEDIA_PORT, `share_port` gives a server peer connection's ICE agent its host
candidates on the process's one media port (port.py) instead of a socket of its own.
"""
from __future__ import annotations

import asyncio
import secrets
import string
from typing import Any

import aioice.ice
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver, codecs
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtp import RtpPacket

from server.media.port import MediaPort, PortTransport


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


def drop_estimate(receiver: RTCRtpReceiver) -> None:
    """Free the receive-side bandwidth estimate aiortc builds into every video receiver (its
    bitrate counter alone is 1,000 one-millisecond buckets, ~100 KB): a publisher's receiver is
    estimated by inbound.Tap's own, and a viewer track's receiver (sendonly) receives nothing.
    aiortc's receive path skips the estimate when there is none, as it does for audio."""
    receiver._RTCRtpReceiver__remote_bitrate_estimator = None  # type: ignore[attr-defined]


def stop_decoding(receiver: RTCRtpReceiver) -> None:
    """aiortc starts a decoder thread in receive(); the forwarding path never feeds it."""
    original = receiver.receive

    async def receive(parameters: Any) -> None:
        await original(parameters)
        receiver._RTCRtpReceiver__stop_decoder()  # type: ignore[attr-defined]

    receiver.receive = receive  # type: ignore[method-assign]
