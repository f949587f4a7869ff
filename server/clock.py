"""The one clock. Every recorded time comes from here, so tests can control time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch, UTC."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to; for tests and benchmarks."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, when: float) -> None:
        self._now = when


def to_ms(seconds: float) -> int:
    return int(round(seconds * 1000))


_FIRST, _LAST = -62_135_596_800, 253_402_300_799  # 0001-01-01T00:00:00Z, 9999-12-31T23:59:59Z


def iso(ms: int | None) -> str | None:
    """ISO 8601 UTC with Z, whole seconds (the contract's unit)."""
    if ms is None:
        return None
    seconds = ms // 1000
    if _FIRST <= seconds <= _LAST:  # the same text as datetime's, in a third of the time
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # out of range: its error
