"""The per-packet path (microseconds): published tracks and the viewer tracks they feed.

A `Source` is one published track; aiortc's receiver hands it every packet (`glue.tap_receiver`),
undecoded, and it passes each to its `Forward`s, one per viewer track. A `Forward` asks its
`forwarding.Rewriter` where the packet goes and does the I/O: builds the header and sends through
the viewer track's `glue.Outlet`, then reports back whether it went. Keyframe requests go
upstream from here too: a viewer that asks (PLI/FIR), at most once per KEYFRAME_MIN_INTERVAL,
and viewers still waiting for a keyframe, at the room's tick.

Nothing here knows about SDP or membership: negotiation creates and retires these objects.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiortc import RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from server.media import glue
from server.media.forwarding import Rewriter
from server.media.packets import header, keyframe_detector

if TYPE_CHECKING:
    from server.media.room import Member

log = logging.getLogger(__name__)

KEYFRAME_MIN_INTERVAL = 0.3  # at most one PLI upstream per publisher track in this long
FLOW_TIMEOUT = 3.0  # a track silent this long counts as not sending
START_GRACE = 5.0  # a new track counts as sending while it connects


class Source:
    """One published track and the viewers it is forwarded to."""

    def __init__(self, owner: Member, kind: str, transceiver: RTCRtpTransceiver, codec: RTCRtpCodecParameters,
                 label: str | None = None) -> None:
        self.owner = owner
        self.kind = kind
        self.label = label or kind  # "audio", "video" (the camera) or "screen"
        self.transceiver = transceiver
        self.codec = codec
        self.mime = codec.mimeType
        self.starts_keyframe = keyframe_detector(codec.mimeType)
        self.forwards: list[Forward] = []
        self.ssrc: int | None = None
        self.blocked = False  # audio muted by the facilitator: not forwarded
        self.packets = 0
        self.loop = asyncio.get_running_loop()
        self.created = self.loop.time()
        self.last_packet = 0.0
        self.last_keyframe_request = float("-inf")
        self.closed = False

    def deliver(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        """The hot path: one incoming packet, out to every viewer."""
        self.packets += 1
        now = self.last_packet = self.loop.time()
        self.ssrc = packet.ssrc
        if self.blocked or self.closed or not self.forwards or codec.mimeType != self.mime:
            return
        detect = self.starts_keyframe
        starts = detect is None or detect(packet.payload)
        broken: list[Forward] | None = None  # made only when needed: this runs for every packet
        for forward in self.forwards:
            try:
                forward.send(packet, starts, now)
            except Exception:  # one broken viewer track must not stop the publisher's receive loop
                log.exception("forwarding to a viewer failed; that viewer track is dropped")
                if broken is None:
                    broken = []
                broken.append(forward)
        if broken is not None:
            for forward in broken:
                self.forwards.remove(forward)

    def request_keyframe(self, min_interval: float = KEYFRAME_MIN_INTERVAL) -> None:
        """Ask the publisher for a keyframe (a PLI), unless one was asked for within `min_interval`."""
        if self.kind != "video" or self.ssrc is None or self.closed:
            return
        now = self.loop.time()
        if now - self.last_keyframe_request < min_interval:
            return
        self.last_keyframe_request = now
        self.owner.room.spawn(glue.request_keyframe(self.transceiver.receiver, self.ssrc))

    def ask_for_waiting_viewers(self, now: float) -> None:
        """Viewers still waiting for a keyframe (and able to take one) ask the publisher again."""
        waiting = [f for f in self.forwards if f.rewriter.keyframe_due(now) and f.outlet.ready()]
        if waiting:
            for forward in waiting:
                forward.rewriter.asked(now)
            self.request_keyframe(min_interval=0.0)

    def sending(self, now: float) -> bool:
        if self.closed or self.blocked:
            return False
        return now - self.last_packet < FLOW_TIMEOUT or (self.packets == 0 and now - self.created < START_GRACE)


class Forward:
    """One source to one viewer track: the rewriter decides, the outlet sends."""

    def __init__(self, source: Source, outlet: glue.Outlet, rewriter: Rewriter | None = None) -> None:
        self.source = source
        self.outlet = outlet
        self.rewriter = rewriter or Rewriter.new(source.codec.clockRate, source.kind == "video")

    def send(self, packet: RtpPacket, keyframe_start: bool, now: float) -> None:
        rewriter = self.rewriter
        placed = rewriter.place(packet.sequence_number, packet.timestamp, packet.ssrc, keyframe_start, now)
        if placed is None:
            return
        outlet = self.outlet
        payload_type = outlet.payload_type
        if payload_type is None:  # not bound to the viewer's negotiated codec yet
            if not outlet.ready():
                rewriter.pause()
                return
            payload_type = outlet.payload_type
            assert payload_type is not None  # ready() bound it
        seq, ts = placed
        if outlet.send(seq, ts, header(packet.marker, payload_type, seq, ts, outlet.ssrc) + packet.payload):
            rewriter.sent(seq, ts, now)
        else:
            rewriter.lost()
