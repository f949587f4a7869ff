"""Simulcast publishers for bench/media.py --simulcast: three pre-encoded VP8 layers sent as a
browser sends them.

aiortc's RTCPeerConnection sends one encoding per track. A browser publishing with
`sendEncodings` (web/static/media.js) offers instead, in its video section, `a=rid:<rid> send`
per layer and `a=simulcast:send q;h;f`, no `a=ssrc` lines, and the RID and MID header
extensions; each layer then goes out under an SSRC of its own, its packets naming the MID and
the layer's RID until the receiver's first report on that SSRC (libwebrtc's rule). Here:

- `simulcast_offer` turns aiortc's offer into such an offer (the extensions themselves are
  offered by aiortc once `glue.accept_simulcast` registered them, as the server does);
- `LayerSender` writes each layer's RTP through the publish connection's DTLS transport (its
  SRTP session and ICE pair): the video transceiver's own sender holds a track that never
  yields, so aiortc sends nothing of its own on it.

Each layer's keyframes come at the start of its loop (every LOOP frames), the publishers' starts
spread over it; a keyframe request (PLI) on a layer's SSRC is answered as the single-layer
publishers answer theirs: that layer's next frame is sent from its keyframe loop (the same
picture encoded as a keyframe), at most every `keyframe_min_s` (`Pictures`, which the
single-layer publishers use too).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import RTCRtpTransceiver
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpParameters
from aiortc.rtp import RTCP_PSFB_PLI, HeaderExtensionsMap, RtcpPsfbPacket, RtcpRrPacket, RtcpSrPacket, RtpPacket

# web/static/media.js's LAYERS on web/static/devices.js's ideal camera (640x480): the RID, the
# scaleResolutionDownBy and the maxBitrate of each encoding, low to high as media.js lists them.
CAMERA = (640, 480)
LAYERS = (("q", 4, 150_000), ("h", 2, 200_000), ("f", 1, 1_200_000))


def layer_sizes(kbps: str = "") -> list[tuple[str, int, int, int]]:
    """(rid, width, height, bitrate) per layer; `kbps` ("150,200,1200") replaces the bitrates."""
    rates = [int(k) * 1000 for k in kbps.split(",")] if kbps else [rate for _, _, rate in LAYERS]
    if len(rates) != len(LAYERS):
        raise ValueError(f"one bitrate per layer: {len(LAYERS)}")
    return [(rid, CAMERA[0] // scale, CAMERA[1] // scale, rate)
            for (rid, scale, _), rate in zip(LAYERS, rates, strict=True)]


def layer_file(frames: Path, rid: str) -> Path:
    """Where one layer's pre-encoded frames are, beside the single-layer clip's."""
    return frames.with_name(f"{frames.stem}-{rid}{frames.suffix}")


def simulcast_offer(sdp: str, rids: list[str]) -> str:
    """aiortc's publish offer as a browser sending simulcast writes it: in the video section,
    `a=rid:<rid> send` per layer and `a=simulcast:send <rid>;...`, and no `a=ssrc`/`a=ssrc-group`
    lines (each layer's SSRC is learnt from its packets). Other sections are left as they are."""
    newline = "\r\n" if "\r\n" in sdp else "\n"
    parts = re.split(r"\r?\n(?=m=)", sdp)
    video = next((i for i, part in enumerate(parts) if part.startswith("m=video")), None)
    if video is None:
        raise ValueError("the offer has no video section")
    body = parts[video].rstrip("\r\n")
    lines = [line for line in body.split(newline) if not line.startswith(("a=ssrc:", "a=ssrc-group:"))]
    lines += [f"a=rid:{rid} send" for rid in rids] + [f"a=simulcast:send {';'.join(rids)}"]
    parts[video] = newline.join(lines) + parts[video][len(body):]
    return newline.join(parts)


@dataclass
class Pictures:
    """A pre-encoded loop of frames, and the same pictures each encoded as a keyframe: asked for
    one (a PLI, `ask`), the next frame comes from the keyframes, as a browser's encoder would make
    one, at most every `min_s`. The single-layer publishers and each simulcast layer use it."""

    frames: list[bytes]
    keyframes: list[bytes] | None = None
    min_s: float = 0.3
    asked: bool = False
    sent_at: float = float("-inf")
    sent: int = 0  # keyframes made on request

    def ask(self) -> None:
        if time.time() - self.sent_at >= self.min_s:
            self.asked = True

    def frame(self, idx: int) -> bytes:
        """Picture `idx` of the loop: a keyframe if one was asked for (the loop's first is one)."""
        if self.asked and self.keyframes and idx != 0:
            self.asked, self.sent_at = False, time.time()
            self.sent += 1
            return self.keyframes[idx]
        return self.frames[idx]


@dataclass(eq=False)  # hashable: aiortc's router collects the RTCP recipients in a set
class Layer:
    """One simulcast layer on the wire: its own SSRC, sequence numbers and timestamps."""

    rid: str
    pictures: Pictures
    ssrc: int = field(default_factory=lambda: random.randrange(1, 1 << 32))
    sequence: int = field(default_factory=lambda: random.randrange(1 << 16))
    timestamp_base: int = field(default_factory=lambda: random.randrange(1 << 32))
    picture_id: int = field(default_factory=lambda: random.randrange(1 << 15))
    reported: bool = False  # the receiver has reported on this SSRC: no more MID and RID
    packets: int = 0
    named: int = 0  # packets sent with the MID and RID extensions

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        """RTCP the DTLS transport routes here (registered as the sender of `ssrc`)."""
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket) and any(r.ssrc == self.ssrc for r in packet.reports):
            self.reported = True
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI and packet.media_ssrc == self.ssrc:
            self.pictures.ask()


class LayerSender:
    """Sends the layers of one publisher's camera through `transceiver`'s DTLS transport, frame k
    of every layer at t0 + k/fps (the same schedule as the single-layer publishers')."""

    def __init__(self, transceiver: RTCRtpTransceiver, layers: dict[str, tuple[list[bytes], list[bytes] | None]],
                 t0: float, fps: int, offset: int, keyframe_min_s: float) -> None:
        self.transceiver = transceiver
        self.layers = [Layer(rid, Pictures(frames, keyframes, keyframe_min_s))
                       for rid, (frames, keyframes) in layers.items()]
        self.t0, self.fps, self.offset = t0, fps, offset
        self.sent_frames = 0

    def report(self) -> dict[str, Any]:
        """Per layer: packets sent, how many named their RID, whether the server reported on it,
        keyframes sent on request."""
        return {layer.rid: {"packets": layer.packets, "named": layer.named, "reported": layer.reported,
                            "keyframes_on_request": layer.pictures.sent} for layer in self.layers}

    async def run(self) -> None:
        dtls = self.transceiver.sender.transport
        payload_type = next(c.payloadType for c in self.transceiver._codecs if c.mimeType.lower() == "video/vp8")
        assert payload_type is not None
        extensions = HeaderExtensionsMap()
        extensions.configure(RTCRtpParameters(headerExtensions=self.transceiver._headerExtensions))
        mid = self.transceiver.mid
        for layer in self.layers:
            dtls._rtp_router.register_sender(layer, layer.ssrc)  # type: ignore[arg-type]  # its reports come to it
        loop_len = len(self.layers[0].pictures.frames)
        k = max(0, int((time.time() - self.t0) * self.fps) + 1)
        k += (-(k + self.offset)) % loop_len  # start at a keyframe
        while True:
            if (delay := self.t0 + k / self.fps - time.time()) > 0:
                await asyncio.sleep(delay)
            for layer in self.layers:
                payloads = Vp8Encoder._packetize(layer.pictures.frame((k + self.offset) % loop_len), layer.picture_id)
                layer.picture_id = (layer.picture_id + 1) % (1 << 15)
                timestamp = (layer.timestamp_base + k * (90000 // self.fps)) % (1 << 32)
                for i, payload in enumerate(payloads):
                    packet = RtpPacket(payload_type=payload_type, marker=int(i == len(payloads) - 1),
                                       sequence_number=layer.sequence, timestamp=timestamp, ssrc=layer.ssrc,
                                       payload=payload)
                    layer.sequence = (layer.sequence + 1) % (1 << 16)
                    packet.extensions.abs_send_time = int(time.time() * (1 << 18)) & 0xFFFFFF  # 6.18 s
                    if not layer.reported:
                        packet.extensions.mid, packet.extensions.rtp_stream_id = mid, layer.rid
                        layer.named += 1
                    await dtls._send_rtp(packet.serialize(extensions))
                    layer.packets += 1
            self.sent_frames += 1
            k += 1
