"""Per-viewer adaptation, decided without I/O (issue 13): which of the others' videos a viewer
shows and how large (its `view` frame), which simulcast layer fits a tile, and who is speaking.

The room applies these decisions at its tick and when a view arrives; the per-packet path
(forwarding.Rewriter) then holds a hidden track and switches layers at keyframes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from server.media.budget import Rate

MAX_TILES = 64  # tiles in one view frame
MAX_SIDE = 16_384  # device pixels
LAYER_TIMEOUT = 1.0  # a layer silent this long has stopped (the browser dropped it): not chosen
FIT = 0.85  # a layer this fraction of the tile's width is sharp enough (no bigger one needed)
NOMINAL_WIDTHS = (320, 640, 1280)  # a layer's width when its keyframes do not say (not VP8), low first

View = dict[str, tuple[int, int]]  # stream id -> (width, height) it is shown at, in device pixels


def parse_view(tiles: Any) -> View:
    """The `view` frame's tiles: [{"id", "width", "height"}, ...]; ValueError says what is wrong."""
    if not isinstance(tiles, list) or len(tiles) > MAX_TILES:
        raise ValueError(f"view needs tiles: a list of at most {MAX_TILES}")
    view: View = {}
    for tile in tiles:
        if not isinstance(tile, dict) or set(tile) - {"id", "width", "height"}:
            raise ValueError('each tile is {"id", "width", "height"}')
        stream, width, height = tile.get("id"), tile.get("width"), tile.get("height")
        if not isinstance(stream, str) or not 0 < len(stream) <= 80:
            raise ValueError("each tile needs id: a stream id")
        if not (_pixels(width) and _pixels(height)):
            raise ValueError(f"each tile needs width and height: whole device pixels, 0-{MAX_SIDE}")
        view[stream] = (width, height)
    return view


def _pixels(value: Any) -> TypeGuard[int]:
    return type(value) is int and 0 <= value <= MAX_SIDE


@dataclass
class Layer:
    """One simulcast layer (encoding) of a published video track, as the server has seen it."""

    ssrc: int
    rid: str | None
    order: int  # its place in the publisher's a=simulcast list
    width: int = 0  # from its last keyframe, where the codec says (VP8); 0: not known
    height: int = 0
    last_packet: float = float("-inf")
    rate: Rate = field(default_factory=Rate, compare=False, repr=False)  # its bitrate as measured here


def ranked(layers: Iterable[Layer]) -> list[Layer]:
    """Smallest first: by the size their keyframes said, or by their place in the list when a
    size is not known (browsers list simulcast layers low to high when told so; ours do)."""
    layers = list(layers)
    if all(layer.width for layer in layers):
        return sorted(layers, key=lambda layer: (layer.width * layer.height, layer.order))
    return sorted(layers, key=lambda layer: layer.order)


def width_of(layer: Layer, rank: int, count: int) -> int:
    if layer.width:
        return layer.width
    return NOMINAL_WIDTHS[max(0, len(NOMINAL_WIDTHS) - count + rank)]


def choose_layer(layers: Iterable[Layer], shown: tuple[int, int] | None, now: float) -> Layer | None:
    """The layer a viewer should get for a tile shown at `shown` (None: size not said, the best):
    the smallest live layer at least about as wide as the tile, else the largest live one."""
    order, want = fitting(layers, shown, now)
    return order[want] if order else None


def fitting(layers: Iterable[Layer], shown: tuple[int, int] | None, now: float) -> tuple[list[Layer], int]:
    """The live layers, smallest first, and the index of the one that fits a tile shown at
    `shown` (see choose_layer); ([], 0) when there are none."""
    every = list(layers)
    live = [layer for layer in every if now - layer.last_packet < LAYER_TIMEOUT] or every
    order = ranked(live)
    if shown is None:
        return order, len(order) - 1
    for rank, layer in enumerate(order):
        if width_of(layer, rank, len(order)) >= shown[0] * FIT:
            return order, rank
    return order, len(order) - 1


# -- the active speaker (RFC 6464 audio levels) -----------------------------------------------------

SPEAKING = 60.0  # loudness (127 - dBov) above which someone counts as speaking (~ -67 dBov)
SMOOTHING = 0.15  # weight of each new audio packet's level (at 50 packets/s: ~150 ms)
TAKE_OVER = 3  # ticks in a row someone must be the loudest speaker to take over


def loudness(previous: float, level_dbov: int) -> float:
    """One audio packet's level (0 loudest, 127 silence) folded into a smoothed loudness."""
    return previous + SMOOTHING * ((127 - level_dbov) - previous)


class SpeakerPicker:
    """Who is speaking, with hysteresis: someone takes over after being the loudest speaker for
    TAKE_OVER ticks in a row; the current speaker stays while nobody else does (a pause for
    breath does not move the big tile)."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.candidate: str | None = None
        self.streak = 0

    def update(self, levels: dict[str, float]) -> str | None:
        """Given each participant's loudness now, return the new speaker if it changed, else None."""
        speaking = {pid: level for pid, level in levels.items() if level >= SPEAKING}
        loudest = max(speaking, key=lambda pid: speaking[pid]) if speaking else None
        if loudest is None or loudest == self.current:
            self.candidate, self.streak = None, 0
            if self.current is not None and self.current not in levels:
                self.current = None  # they left
                return None
            return None
        self.streak = self.streak + 1 if loudest == self.candidate else 1
        self.candidate = loudest
        if self.streak >= TAKE_OVER:
            self.current, self.candidate, self.streak = loudest, None, 0
            return loudest
        return None
