"""How a serving process uses Python's garbage collector.

A full (generation 2) collection scans every tracked object the process holds; with thousands
of waiting connections that is a pause of hundreds of milliseconds, and every admission,
frame and push in the process waits for it (bench/waiting_room.py --server-gc-log). So:

- the start-up objects (modules, the app) are frozen: collections never scan them;
- after each full collection its survivors are frozen too: by then they are long-lived (a
  connection's objects, the rooms), so the next full pass scans only what was made since;
- every `refresh_seconds` the frozen objects are given back, and the next full pass scans
  everything once: a reference cycle that became garbage among frozen objects (a closed
  connection's, say) is freed within that time instead of never;
- the youngest generation is collected every `young_threshold` allocations instead of 700,
  so the short-lived objects of a frame or a push are gone before a collection could promote
  them, and the older generations fill more slowly.

Objects without cycles are freed by reference counting whether frozen or not.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

REFRESH_SECONDS = 600.0
YOUNG_THRESHOLD = 10_000


class CollectorPolicy:
    def __init__(self, refresh_seconds: float = REFRESH_SECONDS, young_threshold: int = YOUNG_THRESHOLD,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.refresh_seconds = refresh_seconds
        self.young_threshold = young_threshold
        self.monotonic = monotonic
        self.full_passes = 0
        self._thresholds = gc.get_threshold()
        self._refreshed_at = 0.0

    def install(self) -> None:
        """Freeze what exists now (call once start-up is done) and apply the policy from here on."""
        gc.freeze()
        self._refreshed_at = self.monotonic()
        gc.set_threshold(self.young_threshold, *self._thresholds[1:])
        gc.callbacks.append(self._after_collection)

    def uninstall(self) -> None:
        if self._after_collection in gc.callbacks:
            gc.callbacks.remove(self._after_collection)
        gc.set_threshold(*self._thresholds)
        gc.unfreeze()

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or info["generation"] != 2:
            return
        self.full_passes += 1
        if self.monotonic() - self._refreshed_at >= self.refresh_seconds:
            gc.unfreeze()  # the next full pass scans everything once
            self._refreshed_at = self.monotonic()
        else:
            gc.freeze()


@contextmanager
def paused() -> Iterator[None]:
    """No collection while a synchronous step builds many objects that all stay alive (a report's
    100,000 rows): every collection it would trigger would scan them and free nothing. Use it
    around code that does not await, so nothing else runs while the collector is off."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
