"""The serving process without PyAV: aiortc imports it, the forwarder never uses it.

aiortc's modules import PyAV (FFmpeg's libraries) at their top for its encoders, decoders and
media tracks, and its maintainers keep it that way (aiortc issues 78, 1371). The forwarder
never decodes or encodes: a publisher's packets go to `inbound.Tap` instead of aiortc's decoder
(glue.stop_decoding), and a viewer track's sender has a track that never yields a frame
(glue.HeldTrack), so its encoder is never made. PyAV is ~16 MB of a serving process's memory
(its Python modules and the FFmpeg libraries they load) before the first room.

`leave_out()`, called by `porchlight serve` before it imports the application, puts in place of
`av` a module holding only the names aiortc's modules import from it. Using any of them (making
a frame, a packet, a codec context: what decoding or encoding would do) raises `NotLoaded`;
anything else of `av` is absent. Where PyAV is already imported (the tests, whose peers decode
in the server's process; bench/transcode.py, whose server re-encodes) it stays.
"""

from __future__ import annotations

import sys
import types
from typing import Any, NoReturn

# What aiortc 1.16's modules import from PyAV (tests/test_media_glue.py checks it still is).
IMPORTED = {
    "av": ("AudioFrame", "VideoFrame", "AudioResampler", "CodecContext"),
    "av.frame": ("Frame",),
    "av.packet": ("Packet",),
    "av.video": (),
    "av.video.codeccontext": ("VideoCodecContext",),
}


class NotLoaded(RuntimeError):
    """Something in the serving process tried to decode or encode media."""


NOT_LOADED = "PyAV is not loaded in the serving process (it forwards, never decodes)"


class AbsentType(type):
    def __getattr__(cls, name: str) -> NoReturn:
        if name.startswith("__"):  # what typing and inspection look for: plainly absent
            raise AttributeError(name)
        raise NotLoaded(f"{cls.__module__}.{cls.__name__}.{name}: {NOT_LOADED}")  # CodecContext.create, ...


class Absent(metaclass=AbsentType):
    """A PyAV class aiortc names (in annotations and imports) that the forwarder never makes."""

    def __new__(cls, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotLoaded(f"{cls.__module__}.{cls.__name__}: {NOT_LOADED}")


def leave_out() -> bool:
    """Put the stand-in in place of PyAV, unless PyAV or aiortc is imported already (then aiortc
    has the real one). True if the stand-in is in place."""
    if "av" in sys.modules or "aiortc" in sys.modules:
        return isinstance(sys.modules.get("av"), StandIn)
    modules = {name: StandIn(name) for name in IMPORTED}
    for name, module in modules.items():
        for class_name in IMPORTED[name]:
            setattr(module, class_name, type(class_name, (Absent,), {"__module__": name}))
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(modules[parent], child, module)
    sys.modules.update(modules)
    return True


class StandIn(types.ModuleType):
    """A module of the stand-in (so it can be told from PyAV's)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, f"stand-in for PyAV's {name} (server/media/without_pyav.py)")
        self.__path__: list[str] = []  # a package: its submodules are the stand-in's too

    def __getattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{self.__name__}.{name}: {NOT_LOADED}")
