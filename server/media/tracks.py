"""The per-packet path (microseconds): published tracks and the viewer tracks they feed.

A `Source` is one published track; the lean receive path hands it every packet
(`inbound.tap_receiver`), undecoded, and it passes each to its `Forward`s, one per viewer track.
A `Forward` asks its `forwarding.Rewriter` where the packet goes, sends it there through the viewer
track's `outbound.Outlet`, then reports back whether it went. Keyframe requests go upstream from
here too: a viewer that asks (PLI/FIR), at most once per KEYFRAME_MIN_INTERVAL, and viewers still
waiting for a keyframe, at the room's tick.

Nothing here knows about SDP or membership: negotiation creates and retires these objects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aiortc import RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from server.media import inbound
from server.media.adapt import Layer, choose_layer, loudness
from server.media.budget import WIRE_OVERHEAD, Rate
from server.media.forwarding import Rewriter
from server.media.inbound import Packet
from server.media.outbound import Outlet
from server.media.packets import keyframe_detector, vp8_keyframe_size
from server.media.sink import FANOUT

if TYPE_CHECKING:
    from server.media.room import Member

log = logging.getLogger(__name__)

KEYFRAME_MIN_INTERVAL = 0.3  # at most one PLI upstream per publisher track in this long
STUCK_ASKS = 10  # a viewer track still without a picture after this many keyframe requests is logged
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
        self.keyframe_size = vp8_keyframe_size if codec.mimeType.lower() == "video/vp8" else None
        self.forwards: list[Forward] = []
        self.ssrc: int | None = None
        self.rids: list[str] = []  # simulcast: the publisher's layers by RID, as its offer lists them
        self.layers: dict[int, Layer] = {}  # by SSRC: each layer (one, without simulcast) as seen
        self.blocked = False  # audio muted by the facilitator: not forwarded
        self.loudness = 0.0  # audio: smoothed level from the RFC 6464 header extension (0 silent)
        self.rate = Rate()  # audio: its bitrate as measured here (video: each layer's own)
        self.dtx = False  # audio: the publisher offered Opus DTX (usedtx=1)
        self.packets = 0
        self.loop = asyncio.get_running_loop()
        self.created = self.loop.time()
        self.last_packet = 0.0
        self.last_keyframe_request: dict[int, float] = {}  # by SSRC
        self.keyframe_requests = 0  # PLIs sent upstream
        self.closed = False

    @property
    def simulcast(self) -> bool:
        return len(self.rids) > 1

    def deliver(self, packet: Packet, codec: RTCRtpCodecParameters) -> None:
        """The hot path: one incoming packet, out to every viewer."""
        self.packets += 1
        now = self.last_packet = self.loop.time()
        ssrc = self.ssrc = packet.ssrc
        if self.blocked or self.closed or codec.mimeType != self.mime:
            return
        detect = self.starts_keyframe
        starts = detect is None or detect(packet.payload)
        if detect is None:
            self.rate.octets += len(packet.payload) + WIRE_OVERHEAD
            if (level := packet.audio_level) is not None:
                self.loudness = loudness(self.loudness, level[1])
        else:
            layer = self.layers.get(ssrc)
            if layer is None:
                layer = self._new_layer(ssrc, packet.rtp_stream_id)
            layer.last_packet = now
            layer.rate.octets += len(packet.payload) + WIRE_OVERHEAD
            if starts and self.keyframe_size is not None and (size := self.keyframe_size(packet.payload)):
                layer.width, layer.height = size
        if not self.forwards:
            return
        broken: list[Forward] | None = None  # made only when needed: this runs for every packet
        wall = time.time()  # for the abs-send-time extension: the same for every viewer
        forwards = self.forwards
        if FANOUT is not None:  # compiled: it leaves to the loop below only what it cannot do itself
            forwards = FANOUT(forwards, packet.sequence_number, packet.timestamp, ssrc, packet.marker, now,
                              packet.payload, wall)
        for forward in forwards:
            try:
                forward.send(packet, starts, now, wall)
            except Exception:  # one broken viewer track must not stop the publisher's receive loop
                log.exception("forwarding to a viewer failed; that viewer track is dropped")
                if broken is None:
                    broken = []
                broken.append(forward)
        if broken is not None:
            for forward in broken:
                self.forwards.remove(forward)

    def _new_layer(self, ssrc: int, rid: str | None) -> Layer:
        """A layer seen for the first time (its first packets carry the RID): viewers re-aim,
        counting it live already, so one it fits takes it from this packet on (the keyframe a
        browser starts every layer with), not from its next keyframe."""
        order = self.rids.index(rid) if rid in self.rids else len(self.layers)
        now = self.loop.time()
        layer = self.layers[ssrc] = Layer(ssrc, rid, order, last_packet=now)
        if self.simulcast:
            for forward in self.forwards:
                forward.adapt(now)
        return layer

    def request_keyframe(self, min_interval: float = KEYFRAME_MIN_INTERVAL, ssrc: int | None = None) -> None:
        """Ask the publisher for a keyframe (a PLI) on a layer (by default the last one heard),
        unless one was asked for within `min_interval`."""
        ssrc = ssrc if ssrc is not None else self.ssrc
        if self.kind != "video" or ssrc is None or self.closed:
            return
        now = self.loop.time()
        if now - self.last_keyframe_request.get(ssrc, float("-inf")) < min_interval:
            return
        self.last_keyframe_request[ssrc] = now
        self.keyframe_requests += 1
        self.owner.room.spawn(inbound.request_keyframe(self.transceiver.receiver, ssrc))

    def ask_for_waiting_viewers(self, now: float) -> None:
        """Viewers re-aim (a layer stopped or came back), and those still waiting for a keyframe
        (and able to take one) ask the publisher again, on the layer each wants."""
        wanted: set[int | None] = set()
        stuck = 0
        for forward in self.forwards:
            if self.simulcast:
                forward.aim(now)
            rewriter = forward.rewriter
            if rewriter.keyframe_due(now) and forward.outlet.ready():
                rewriter.asked(now)
                wanted.add(rewriter.target)
                stuck += rewriter.unanswered == STUCK_ASKS
        if stuck:  # once per viewer track and episode: what an operator (or the next engineer) needs
            log.warning("%d viewer track(s) of %s's %s still wait for a keyframe after %d requests "
                        "(from it: %d packets, the last %.1f s ago, layers %s)", stuck, self.owner.pid, self.label,
                        STUCK_ASKS, self.packets, now - self.last_packet if self.packets else float("nan"),
                        sorted(self.layers) or "none")
        for ssrc in wanted:
            self.request_keyframe(min_interval=0.0, ssrc=ssrc)

    def measure(self, now: float) -> None:
        """Sample the bitrate of the audio, or of each video layer; bring the viewer tracks'
        sender reports up to date (at the room's tick)."""
        self.rate.sample(now)
        for layer in self.layers.values():
            layer.rate.sample(now)
        for forward in self.forwards:
            forward.outlet.report()

    def sending(self, now: float) -> bool:
        if self.closed or self.blocked:
            return False
        return now - self.last_packet < FLOW_TIMEOUT or (self.packets == 0 and now - self.created < START_GRACE)


class Forward:
    """One source to one viewer track: the rewriter decides, the outlet sends."""

    def __init__(self, source: Source, outlet: Outlet, rewriter: Rewriter | None = None) -> None:
        self.source = source
        self.outlet = outlet
        self.rewriter = rewriter or Rewriter.new(source.codec.clockRate, source.kind == "video")
        self.visible = True  # the viewer shows this track (its `view`; everything until one comes)
        self.shown_at: tuple[int, int] | None = None  # the size the viewer shows it at; None: not said
        # The viewer's bandwidth or data saver decides (budget.allocate): the layer to send, or
        # None: paused. Not budgeted: the layer that fits the tile.
        self.budgeted = False
        self.allotted: int | None = None

    def allot(self, ssrc: int | None) -> None:
        self.budgeted, self.allotted = True, ssrc

    def unbudget(self) -> None:
        self.budgeted, self.allotted = False, None

    @property
    def paused(self) -> bool:
        """Held for the viewer's bandwidth (or data saver), though its tile is shown."""
        return self.visible and self.budgeted and self.allotted is None

    def adapt(self, now: float, visible: bool | None = None, shown_at: tuple[int, int] | None = None) -> None:
        """Apply the viewer's view and budget: a hidden or paused track is held; a shown one gets
        the layer that fits (the tile, and the budget), and a keyframe is asked for at once where
        it now waits for one (never a frozen picture)."""
        if visible is not None:
            self.visible, self.shown_at = visible, shown_at
        rewriter = self.rewriter
        if not self.visible or (self.budgeted and self.allotted is None):
            rewriter.hold()
            return
        rewriter.release()
        if self.source.simulcast:
            self.aim(now)
        if rewriter.keyframe_due(now) and self.outlet.ready():
            rewriter.asked(now)
            self.source.request_keyframe(ssrc=rewriter.target)

    def aim(self, now: float) -> None:
        if self.budgeted and self.allotted in self.source.layers:
            self.rewriter.aim(self.allotted)
            return
        layer = choose_layer(self.source.layers.values(), self.shown_at, now)
        self.rewriter.aim(layer.ssrc if layer is not None else None)

    @property
    def state(self) -> str:
        """What this viewer track does now, for operators (/metrics): "held" (the viewer does not
        show it, or its budget pauses it), "unready" (not negotiated, or DTLS not up), "waiting"
        (video waiting for a keyframe), or "sending"."""
        rewriter = self.rewriter
        if rewriter.held:
            return "held"
        if not self.outlet.ready():
            return "unready"
        return "waiting" if rewriter.waiting else "sending"

    @property
    def current(self) -> int | None:
        """The publisher's SSRC (layer) this viewer track is sending now, if any."""
        rewriter = self.rewriter
        return None if rewriter.held else rewriter.ssrc

    def send(self, packet: Packet, keyframe_start: bool, now: float, wall: float) -> None:
        rewriter = self.rewriter
        placed = rewriter.place(packet.sequence_number, packet.timestamp, packet.ssrc, keyframe_start, now)
        if placed is None:
            return
        outlet = self.outlet
        if outlet.payload_type is None and not outlet.ready():  # not bound to the viewer's negotiated codec yet
            rewriter.pause()
            return
        seq, ts = placed
        if outlet.send(packet.marker, seq, ts, packet.payload, wall):
            rewriter.sent(seq, ts, now)
        else:
            rewriter.lost(seq, ts, now)
