"""The lean receive path reads RTP as aiortc does (`inbound.parse` against `RtpPacket.parse`, on
generated packets), refuses what aiortc refuses, and unwraps RTX as aiortc does."""

from __future__ import annotations

import random

import pytest
from aiortc import RTCDtlsTransport, RTCIceGatherer, RTCIceTransport, RTCRtpReceiver
from aiortc.rtcdtlstransport import RTCCertificate
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unwrap_rtx

from server.media import inbound

URIS = {
    1: "urn:ietf:params:rtp-hdrext:sdes:mid",
    3: "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    4: "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    10: "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    11: "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
}
FIELDS = ("payload_type", "marker", "sequence_number", "timestamp", "ssrc", "payload", "padding_size")
EXTENSIONS = ("abs_send_time", "audio_level", "rtp_stream_id", "repaired_rtp_stream_id", "mid")


def extension_map() -> tuple[HeaderExtensionsMap, object]:
    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=number, uri=uri) for number, uri in URIS.items()]))
    return extensions, extensions._HeaderExtensionsMap__ids  # type: ignore[attr-defined]


def random_packet(rng: random.Random, extensions: HeaderExtensionsMap) -> bytes:
    packet = RtpPacket(payload_type=rng.randrange(128), marker=rng.randrange(2),
                       sequence_number=rng.randrange(1 << 16), timestamp=rng.randrange(1 << 32),
                       ssrc=rng.randrange(1 << 32), payload=rng.randbytes(rng.randrange(0, 1200)))
    packet.csrc = [rng.randrange(1 << 32) for _ in range(rng.choice([0, 0, 0, 1, 3]))]
    if rng.random() < 0.3:
        packet.padding_size = rng.randrange(1, 256)
    values = packet.extensions
    if rng.random() < 0.7:
        values.abs_send_time = rng.randrange(1 << 24)
    if rng.random() < 0.4:
        values.audio_level = (rng.random() < 0.5, rng.randrange(128))
    if rng.random() < 0.3:
        values.rtp_stream_id = rng.choice(["q", "h", "f", "layer-2"])
    if rng.random() < 0.2:
        values.repaired_rtp_stream_id = rng.choice(["q", "h"])
    if rng.random() < 0.4:
        values.mid = rng.choice(["0", "1", "video-12"])
    return packet.serialize(extensions)


def as_aiortc_reads(packet: RtpPacket) -> tuple[object, ...]:
    return (*(getattr(packet, name) for name in FIELDS), *(getattr(packet.extensions, name) for name in EXTENSIONS))


def as_inbound_reads(packet: inbound.Packet) -> tuple[object, ...]:
    return tuple(getattr(packet, name) for name in (*FIELDS, *EXTENSIONS))


def test_the_header_reads_as_aiortc_reads_it_on_generated_packets() -> None:
    extensions, ids = extension_map()
    rng = random.Random(13)
    for _ in range(3000):
        data = random_packet(rng, extensions)
        parsed = inbound.parse(data, ids)  # type: ignore[arg-type]
        assert parsed is not None
        assert as_inbound_reads(parsed) == as_aiortc_reads(RtpPacket.parse(data, extensions))


def test_two_byte_extensions_read_as_aiortc_reads_them() -> None:
    extensions, ids = extension_map()
    # RFC 8285's two-byte form (profile 0x1000): id, length, value; with padding between, and an
    # element of an id nobody agreed (9), skipped.
    values = bytes([3, 3, 0x12, 0x34, 0x56, 0, 9, 2, 0xFF, 0xFF, 10, 1, ord("h"), 1, 1, ord("7")])
    values += bytes(-len(values) % 4)
    data = bytes([0x90, 96, 0, 7, 0, 0, 0, 9, 0, 0, 0, 5]) + (0x1000).to_bytes(2, "big") + \
        (len(values) // 4).to_bytes(2, "big") + values + b"payload"
    parsed = inbound.parse(data, ids)  # type: ignore[arg-type]
    assert parsed is not None
    assert as_inbound_reads(parsed) == as_aiortc_reads(RtpPacket.parse(data, extensions))
    assert (parsed.abs_send_time, parsed.rtp_stream_id, parsed.mid) == (0x123456, "h", "7")


@pytest.mark.parametrize("data", [
    b"",
    bytes(11),  # shorter than a header
    bytes([0x40]) + bytes(11),  # RTP version 1
    bytes([0x83]) + bytes(11),  # three CSRCs announced, none there
    bytes([0x90]) + bytes(11) + b"\xbe\xde\x00\x02\x10",  # an extension longer than the packet
    bytes([0x90]) + bytes(11) + b"\xbe\xde\x00\x01\x3f\x00\x00\x00",  # a one-byte element past its end
    bytes([0xA0]) + bytes(11) + b"\x00",  # padding of length zero
    bytes([0xA0]) + bytes(11) + b"ab\x09",  # more padding than packet
    bytes([0x90]) + bytes(11) + b"\xbe\xde\x00\x01\xa0\xff\x00\x00",  # a RID (id 10) that is not ASCII
])
def test_what_aiortc_refuses_is_dropped(data: bytes) -> None:
    extensions, ids = extension_map()
    with pytest.raises(ValueError):
        RtpPacket.parse(data, extensions)
    assert inbound.parse(data, ids) is None  # type: ignore[arg-type]


async def test_rtx_is_unwrapped_as_aiortc_unwraps_it() -> None:
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    rtx = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96})
    receiver = RTCRtpReceiver("video", RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()),
                                                        [RTCCertificate.generateCertificate()]))
    receiver._RTCRtpReceiver__codecs.update({96: vp8, 97: rtx})  # type: ignore[attr-defined]  # as receive() fills them
    receiver._RTCRtpReceiver__rtx_ssrc[2222] = 1111  # type: ignore[attr-defined]
    delivered: list[tuple[inbound.Packet, RTCRtpCodecParameters]] = []
    tap = inbound.tap_receiver(receiver, lambda packet, codec: delivered.append((packet, codec)),
                               estimate_bandwidth=False)
    wrapped = RtpPacket(payload_type=97, marker=1, sequence_number=7, timestamp=9000, ssrc=2222,
                        payload=(40).to_bytes(2, "big") + b"frame")
    extensions, ids = extension_map()
    parsed = inbound.parse(wrapped.serialize(extensions), ids)  # type: ignore[arg-type]
    assert parsed is not None
    tap.take(parsed, 0)
    [(packet, codec)] = delivered
    assert codec is vp8
    expected = unwrap_rtx(wrapped, payload_type=96, ssrc=1111)
    assert (packet.payload_type, packet.sequence_number, packet.timestamp, packet.ssrc, packet.payload,
            packet.marker) == (expected.payload_type, expected.sequence_number, expected.timestamp, expected.ssrc,
                               expected.payload, expected.marker) == (96, 40, 9000, 1111, b"frame", 1)
    tap.take(parsed, 0)  # the NACK generator and statistics saw the original's numbers
    stats = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    assert set(stats) == {2222} and stats[2222].packets_received == 2


def test_estimates_go_back_at_most_every_200_ms_unless_they_fall() -> None:
    throttle = inbound.RembThrottle()
    assert throttle.due(1_000_000, 0)  # the first one at once
    assert not throttle.due(1_200_000, 100)  # a rise waits for the interval
    assert not throttle.due(980_000, 150)  # a fall of 2% too
    assert throttle.due(960_000, 160)  # a fall of more than 3%: at once
    assert not throttle.due(959_000, 300)
    assert throttle.due(1_500_000, 360)  # 200 ms after the last one sent
    sent = [ms for ms in range(400, 2400, 10) if throttle.due(2_000_000, ms)]  # an estimate with every packet
    assert sent == list(range(560, 2400, 200))
