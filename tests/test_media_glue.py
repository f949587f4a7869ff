"""The aiortc internals the forwarder depends on still exist and still mean what it assumes.

If aiortc is upgraded and one of these moves, this file fails first, naming it."""

from __future__ import annotations

import asyncio
import inspect
import socket
import time

import aioice.ice
from aiortc import RTCDtlsTransport, RTCIceGatherer, RTCIceTransport, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCCertificate, RtpRouter
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import RTCP_PSFB_APP, HeaderExtensionsMap, RtcpPsfbPacket, RtpPacket, pack_remb_fci

from server.media import glue, inbound, outbound
from server.media.packets import h264_keyframe_start, header, keyframe_start, vp8_keyframe_start


async def transport() -> RTCDtlsTransport:
    return RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])


async def test_receiver_internals_the_tap_reads() -> None:
    receiver = RTCRtpReceiver("video", await transport())
    for name in ("codecs", "rtx_ssrc", "remote_streams", "nack_generator", "remote_bitrate_estimator",
                 "rtcp_ssrc", "stop_decoder", "kind"):
        assert hasattr(receiver, f"_RTCRtpReceiver__{name}"), name
    assert list(inspect.signature(receiver._handle_rtp_packet).parameters) == ["packet", "arrival_time_ms"]
    for name in ("_send_rtcp_pli", "_send_rtcp_nack", "_send_rtcp", "_enabled"):
        assert hasattr(receiver, name), name
    delivered: list[object] = []
    tap = inbound.tap_receiver(receiver, lambda packet, codec: delivered.append(packet))
    assert receiver._handle_rtp_packet == tap.handle
    # The lean path sits in front of the ICE connection's queue, and reads the DTLS transport's
    # SRTP session, router, extension ids, state, counters and full-way handler.
    dtls = receiver.transport
    listener = inbound.listen(dtls)
    assert inbound.listen(dtls) is listener and listener.taps == {receiver: tap}
    assert dtls.transport._connection.data_received == listener.data_received
    assert "self._queue.put_nowait((data, component))" in inspect.getsource(aioice.Connection.data_received)
    assert "self.receiver.data_received(" in inspect.getsource(aioice.ice.StunProtocol.datagram_received)
    assert dtls._rx_srtp is None and isinstance(dtls._rtp_router.ssrc_table, dict)
    assert isinstance(dtls._RTCDtlsTransport__rx_bytes, int) and isinstance(dtls._RTCDtlsTransport__rx_packets, int)
    assert list(inspect.signature(dtls._handle_rtp_data).parameters) == ["data", "arrival_time_ms"]
    ids = dtls._rtp_header_extensions_map._HeaderExtensionsMap__ids
    assert all(hasattr(ids, name) for name in ("mid", "rtp_stream_id", "repaired_rtp_stream_id", "abs_send_time",
                                               "audio_level"))
    from aiortc import clock
    assert abs(clock.current_ms() - (int(time.time() * 1000) + inbound.NTP_EPOCH_MS)) < 50  # the same epoch


async def test_a_receivers_own_estimate_is_dropped_and_the_taps_kept() -> None:
    # aiortc's receive path skips a missing estimate (as for audio): nothing else reads it.
    assert "if self.__remote_bitrate_estimator is not None" in inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    video, audio = RTCRtpReceiver("video", await transport()), RTCRtpReceiver("audio", await transport())
    taps = [inbound.tap_receiver(receiver, lambda packet, codec: None) for receiver in (video, audio)]
    for receiver in (video, audio):
        glue.drop_estimate(receiver)
        assert receiver._RTCRtpReceiver__remote_bitrate_estimator is None
    assert taps[0].estimator is not None and taps[1].estimator is None  # the tap estimates video


async def test_sender_internals_the_outlet_writes() -> None:
    sender = RTCRtpSender("video", await transport())
    for name in ("ntp_timestamp", "rtp_timestamp", "packet_count", "octet_count", "rtt"):
        assert hasattr(sender, f"_RTCRtpSender__{name}"), name
    assert sender._RTCRtpSender__transport is sender.transport  # what Outlet.send reads
    assert "self.__ntp_timestamp" in inspect.getsource(RTCRtpSender._run_rtcp)  # sender reports read them
    assert isinstance(sender._ssrc, int)
    assert hasattr(sender, "_stream_id")
    source = inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert "self._retransmit(" in source and "self._send_keyframe()" in source  # where NACK and PLI land


async def test_a_viewers_remb_reaches_the_senders_it_names_and_goes_to_the_estimate() -> None:
    sender = RTCRtpSender("video", await transport())
    router = RtpRouter()
    router.register_sender(sender, sender._ssrc)
    remb = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=pack_remb_fci(480_000, [sender._ssrc]))
    assert router.route_rtcp(remb) == {sender}  # by the SSRCs in its FCI (media_ssrc is 0)
    reports: list[tuple[int, list[int]]] = []
    outbound.watch_remb(sender, lambda bitrate, ssrcs: reports.append((bitrate, ssrcs)))
    await sender._handle_rtcp_packet(remb)
    assert reports == [(480_000, [sender._ssrc])]


def test_forwarded_video_carries_abs_send_time_as_aiortc_reads_it() -> None:
    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=3, uri=glue.ABS_SEND_TIME)]))
    data = header(1, 96, 7, 90_000, 1234, send_time_id=3, now=1000.25) + b"payload"
    packet = RtpPacket.parse(data, extensions)
    assert (packet.marker, packet.payload_type, packet.sequence_number, packet.ssrc) == (1, 96, 7, 1234)
    assert packet.payload == b"payload"
    assert packet.extensions.abs_send_time == int(1000.25 * 262144) & 0xFFFFFF
    assert RtpPacket.parse(header(0, 96, 7, 90_000, 1234) + b"x").extensions.abs_send_time is None
    assert hasattr(RTCRtpTransceiver("video", None, None), "_headerExtensions")  # what Outlet.bind reads


async def test_transport_internals_the_outlet_sends_on() -> None:
    dtls = await transport()
    assert dtls._state is DtlsState.NEW
    assert hasattr(dtls, "_tx_srtp") and hasattr(dtls, "_send_rtp")
    assert hasattr(dtls.transport._connection, "_nominated")
    assert "transport.sendto" in inspect.getsource(aioice.ice.StunProtocol.send_data)
    # Outlet._route finds the socket under asyncio's datagram transport.
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    try:
        assert isinstance(udp._sock, socket.socket)  # type: ignore[attr-defined]
    finally:
        udp.close()


def test_ntp_time_matches_aiortcs() -> None:
    from aiortc.clock import current_ntp_time

    assert abs(outbound.ntp_now() - current_ntp_time()) < (1 << 32) // 100  # within 10 ms


def test_loopback_candidates_are_offered() -> None:
    glue.allow_loopback_candidates()
    glue.allow_loopback_candidates()  # idempotent
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False).count("127.0.0.1") == 1


def test_keyframe_detection() -> None:
    # VP8: S=1, PID=0, no extension, frame tag with P=0 (key) or 1 (delta).
    assert vp8_keyframe_start(bytes([0x10, 0x00, 0x00]))
    assert not vp8_keyframe_start(bytes([0x10, 0x01, 0x00]))
    assert not vp8_keyframe_start(bytes([0x00, 0x00]))  # not the start of a frame
    # With X, I (15-bit picture id), L, T/K: the frame tag comes after four more bytes.
    assert vp8_keyframe_start(bytes([0x90, 0xE0, 0x80, 0x01, 0x05, 0x00, 0x00]))
    assert not vp8_keyframe_start(bytes([0x90, 0xE0, 0x80, 0x01, 0x05, 0x00, 0x01]))
    assert not vp8_keyframe_start(bytes([0x90]))  # truncated
    # H264: IDR, SPS, STAP-A holding SPS, FU-A starting an IDR; a P slice is not.
    assert h264_keyframe_start(bytes([0x65]))
    assert h264_keyframe_start(bytes([0x67, 0x42]))
    assert h264_keyframe_start(bytes([0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68]))
    assert h264_keyframe_start(bytes([0x7C, 0x85]))
    assert not h264_keyframe_start(bytes([0x7C, 0x05]))  # a middle fragment
    assert not h264_keyframe_start(bytes([0x41]))
    assert keyframe_start("audio/opus", b"\x00")
    assert header(1, 96, 65535, 2**32 - 1, 1234) == bytes([0x80, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                                          0x00, 0x00, 0x04, 0xD2])


def test_simulcast_extensions_and_mid_routing_are_accepted() -> None:
    from aiortc.codecs import HEADER_EXTENSIONS
    from aiortc.rtcdtlstransport import RtpRouter
    from aiortc.rtp import RtpPacket

    glue.accept_simulcast()
    glue.accept_simulcast()  # idempotent
    uris = [extension.uri for extension in HEADER_EXTENSIONS["video"]]
    assert all(uris.count(uri) == 1 for uri in glue.RID_EXTENSIONS)
    assert len({extension.id for extension in HEADER_EXTENSIONS["video"]}) == len(uris)
    # The router's tables the MID fallback uses, and the fallback itself: an SSRC no a=ssrc line
    # announced, on a payload type two sections share, reaches the section its MID names.
    router = RtpRouter()
    camera, screen = object(), object()
    router.register_receiver(camera, ssrcs=[], payload_types=[96], mid="1")  # type: ignore[arg-type]
    router.register_receiver(screen, ssrcs=[777], payload_types=[96], mid="2")  # type: ignore[arg-type]
    packet = RtpPacket(payload_type=96, ssrc=1234)
    assert router.route_rtp(packet) is None  # no MID: aiortc cannot tell
    packet.extensions.mid = "1"
    assert router.route_rtp(packet) is camera
    assert router.route_rtp(RtpPacket(payload_type=96, ssrc=1234)) is camera  # remembered by SSRC
    assert router.route_rtp(RtpPacket(payload_type=96, ssrc=777)) is screen


async def test_ice_internals_the_shared_port_uses() -> None:
    """glue.share_port and put_on_port: the peer connection's transport factory, the ICE agent's
    ufrag, gathering hook and protocol list, and the protocol's transactions."""
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    try:
        assert callable(pc._RTCPeerConnection__createDtlsTransport)
        agent = (await transport()).transport.iceGatherer._connection
        assert hasattr(agent, "_local_username") and isinstance(agent._protocols, list)
        assert list(inspect.signature(agent.get_component_candidates).parameters) == ["component", "addresses",
                                                                                      "timeout"]
        assert "transactions" in vars(aioice.ice.StunProtocol(agent))
        assert inspect.iscoroutinefunction(aioice.ice.server_reflexive_candidate)
    finally:
        await pc.close()
