"""Per-viewer bandwidth (issue 13), decided without I/O: what a viewer's link can take, what each
layer really costs, and which video layers fit. Audio is never cut: it is paid for first.

- `Rate` measures a stream's bitrate on the server (bytes as they will cross the viewer's link),
  sampled at the room's tick;
- `Bandwidth` keeps a viewer's REMB reports (RTCP feedback its receiver sends) and sums them into
  an estimate;
- `allocate` gives each video track the viewer shows a layer, or nothing, so that the sum fits:
  the speaker's smallest layer first, then up to the layer their tile wants; then every other
  tile's smallest layer, biggest tiles first; then the others' higher layers, round by round.
  So when the estimate falls, the others' higher layers go first, then the others themselves
  (paused, smallest tiles first), then the speaker's higher layers. The speaker's smallest layer
  is sent whatever the estimate says (as Jitsi's bridge does by default for its on-stage
  participant): a receive-side estimate grows only to about 1.5x what arrives, so a video paused
  for it might never fit again, and the speaker is the one picture a group needs. With data
  saver only the speaker's smallest layer is sent.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

WIRE_OVERHEAD = 50  # bytes per packet on the viewer's link beyond the payload: RTP 12, SRTP tag 10, UDP 8, IP 20
HEADROOM = 0.9  # share of the estimate spent on media (RTCP and retransmissions need the rest)
UPGRADE = 1.15  # a layer not being sent yet must fit with this margin, so choices do not flap at the edge
MIN_RATE = 30_000  # bps a layer counts as before it has been measured
SMOOTHING = 0.3  # weight of each tick's measurement (at 4 ticks/s: about a second)
REPORT_TIMEOUT = 5.0  # seconds after which a viewer's REMB report no longer counts


class Rate:
    """A stream's bitrate: the hot path adds each packet's bytes to `octets`; `sample` at the
    tick turns them into smoothed bits per second."""

    __slots__ = ("octets", "bps", "_octets", "_at")

    def __init__(self) -> None:
        self.octets = 0
        self.bps = 0.0
        self._octets = 0
        self._at: float | None = None

    def sample(self, now: float) -> float:
        if self._at is not None and now > self._at:
            measured = (self.octets - self._octets) * 8 / (now - self._at)
            self.bps = measured if self.bps == 0.0 else self.bps + SMOOTHING * (measured - self.bps)
        self._octets, self._at = self.octets, now
        return self.bps


class Bandwidth:
    """A viewer's REMB reports. Each covers some of its streams (SSRCs): a browser sends one for
    all of them, aiortc one per stream. A report replaces the earlier ones it overlaps; the
    estimate is the sum of those still fresh, or None (no cap) when there are none."""

    def __init__(self) -> None:
        self.reports: list[tuple[frozenset[int], int, float]] = []

    def report(self, bitrate: int, ssrcs: Iterable[int], now: float) -> None:
        covered = frozenset(ssrcs)
        self.reports = [r for r in self.reports if not r[0] & covered and now - r[2] < REPORT_TIMEOUT]
        self.reports.append((covered, bitrate, now))

    def estimate(self, now: float) -> int | None:
        self.reports = [r for r in self.reports if now - r[2] < REPORT_TIMEOUT]
        return sum(bitrate for _, bitrate, _ in self.reports) if self.reports else None


@dataclass(frozen=True)
class Track:
    """One video track a viewer shows, as the allocation sees it."""

    key: Hashable
    layers: tuple[tuple[int, float], ...]  # (SSRC, measured bps) of its live layers, smallest first
    want: int  # index of the layer its tile wants (by size)
    speaker: bool = False  # the active speaker's camera
    area: int = 0  # pixels it is shown at: bigger tiles come first
    current: int | None = None  # the SSRC being sent now, if any


Allocation = dict[Hashable, int | None]  # track key -> the SSRC of the layer to send, None: paused


def allocate(tracks: Iterable[Track], budget: float | None, data_saver: bool = False) -> Allocation:
    """The layer each track gets within `budget` bps for video (None: no cap)."""
    tracks = list(tracks)
    ordered = sorted(tracks, key=lambda t: (not t.speaker, -t.area, str(t.key)))
    if data_saver:
        ordered = [Track(t.key, t.layers[:1], 0, True, t.area, t.current) for t in ordered if t.speaker]
    limit = float("inf") if budget is None else budget
    chosen: dict[Hashable, int] = {}  # key -> layer index
    spent = 0.0

    def cost(track: Track, index: int) -> float:
        return max(track.layers[index][1], MIN_RATE)

    def take(track: Track, index: int) -> bool:
        nonlocal spent
        before = cost(track, chosen[track.key]) if track.key in chosen else 0.0
        margin = 1.0 if track.layers[index][0] == track.current else UPGRADE
        if spent - before + cost(track, index) * margin > limit:
            return False
        spent += cost(track, index) - before
        chosen[track.key] = index
        return True

    speakers = [t for t in ordered if t.speaker and t.layers]
    others = [t for t in ordered if not t.speaker and t.layers]
    for track in speakers:  # the speaker's smallest layer goes out whatever the estimate says
        chosen[track.key] = 0
        spent += cost(track, 0)
        for index in range(1, min(track.want, len(track.layers) - 1) + 1):
            if not take(track, index):
                break
    placed = [track for track in others if take(track, 0)]
    raised = True
    while raised:
        raised = False
        for track in placed:
            index = chosen[track.key] + 1
            if index <= min(track.want, len(track.layers) - 1) and take(track, index):
                raised = True
    allocation: Allocation = {t.key: None for t in tracks}
    allocation.update((t.key, t.layers[chosen[t.key]][0]) for t in ordered if t.key in chosen)
    return allocation


def video_budget(estimate: int | None, audio_bps: float) -> float | None:
    """What is left for video of a viewer's estimate once its audio is paid for (None: no cap)."""
    if estimate is None:
        return None
    return max(0.0, estimate * HEADROOM - audio_bps)
