"""A simulcast publisher's layers as they first arrive (server/media/tracks.py): a browser starts
all its layers on the same keyframe, one after the other, and each viewer must be aimed at the
layer that fits it by the time that layer's first packet is forwarded. Otherwise the viewer
starts on a smaller layer and waits for the next keyframe of the right one (the bench's
simulcast publishers, which do not answer keyframe requests, showed viewers held on the
lowest layer for a whole 4 s keyframe interval).

Real aiortc transceivers and real VP8 keyframes; no network: the forwarding decisions are read
from each viewer track's rewriter."""

from __future__ import annotations

import fractions

import av
from aiortc import RTCPeerConnection
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from server.media import glue
from server.media.inbound import Packet
from server.media.outbound import Outlet
from server.media.tracks import Forward, Source

LAYERS = (("q", 160, 120, 0x1111), ("h", 320, 240, 0x2222), ("f", 640, 480, 0x3333))  # rid, size, SSRC


def keyframe_start(width: int, height: int) -> bytes:
    """The first RTP payload of a real VP8 keyframe of this size."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 15)
    encoder.options = {"deadline": "realtime", "cpu-used": "8"}
    frame = av.VideoFrame(width, height, "yuv420p")
    frame.pts = 0
    data = b"".join(bytes(p) for p in [*encoder.encode(frame), *encoder.encode(None)])
    return Vp8Encoder._packetize(data, picture_id=1)[0]


async def test_each_viewer_is_aimed_at_its_layer_by_that_layers_first_keyframe() -> None:
    publish, subscribe = RTCPeerConnection(), RTCPeerConnection()
    try:
        codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
        camera = publish.addTransceiver("video", direction="recvonly")
        # The owner is asked for only to send keyframe requests, which a viewer whose DTLS is not up makes none of.
        source = Source(None, "video", camera, codec)  # type: ignore[arg-type]
        source.rids = [rid for rid, *_ in LAYERS]
        viewers = {}
        for name, shown_at in (("laptop", None), ("phone", (360, 270))):
            track = subscribe.addTransceiver(glue.HeldTrack("video", name), direction="sendonly")
            forward = Forward(source, Outlet(track, lambda: None))
            forward.adapt(0.0, visible=True, shown_at=shown_at)
            source.forwards.append(forward)
            viewers[name] = forward

        payloads = [keyframe_start(width, height) for _, width, height, _ in LAYERS]  # before: layers time out
        aimed = {}
        for sequence, ((rid, _, _, ssrc), payload) in enumerate(zip(LAYERS, payloads, strict=True)):
            packet = Packet(payload_type=96, marker=0, sequence_number=sequence, timestamp=0, ssrc=ssrc,
                            payload=payload)
            packet.rtp_stream_id = rid
            source.deliver(packet, codec)
            aimed[rid] = {name: forward.rewriter.target for name, forward in viewers.items()}

        # The phone's 360-wide tile takes the 320-wide layer from h's first keyframe on; the laptop,
        # which did not say a size, the best layer from f's.
        assert aimed["h"]["phone"] == 0x2222
        assert aimed["f"] == {"laptop": 0x3333, "phone": 0x2222}
        assert [(layer.rid, layer.width) for layer in source.layers.values()] == [("q", 160), ("h", 320), ("f", 640)]
    finally:
        await publish.close()
        await subscribe.close()
