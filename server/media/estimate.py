"""aiortc's receive-side bandwidth estimate (abs-send-time, REMB), with its two per-packet loops
made constant-time; the estimates are the same (tests/test_media_estimate.py replays packet
streams through both).

The estimate runs for every video packet a publisher sends, and aiortc's costs ~36 µs a packet
here, most of it in two loops: the incoming-bitrate counter clears its 1 ms buckets one at a
time up to the packet's arrival (twice per packet), and the overuse estimator takes the minimum
of its last 60 frame intervals with a call of `min` per interval.
"""

from __future__ import annotations

from collections import deque

from aiortc.rate import (
    MIN_FRAME_PERIOD_HISTORY_LENGTH,
    OveruseEstimator,
    RateBucket,
    RateCounter,
    RemoteBitrateEstimator,
)


class WindowCounter(RateCounter):
    """RateCounter's window as a queue of (arrival ms, value): what leaves the window is popped
    from the front instead of clearing every millisecond's bucket on the way."""

    def reset(self) -> None:
        self._buckets = []  # unused: the queue holds what the window has
        self._queue: deque[tuple[int, int]] = deque()
        self._origin_index = 0
        self._origin_ms = None
        self._total = RateBucket()

    def add(self, value: int, now_ms: int) -> None:
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        self._queue.append((now_ms, value))
        self._total.count += 1
        self._total.value += value

    def _erase_old(self, now_ms: int) -> None:
        assert self._origin_ms is not None
        new_origin_ms = now_ms - self._window_size + 1
        if self._origin_ms >= new_origin_ms:
            return
        queue, total = self._queue, self._total
        while queue and queue[0][0] < new_origin_ms:
            _, value = queue.popleft()
            total.count -= 1
            total.value -= value
        self._origin_ms = new_origin_ms


class FramePeriodEstimator(OveruseEstimator):
    """OveruseEstimator whose minimum frame interval is one call of `min` over its history."""

    def update_min_frame_period(self, ts_delta: float) -> float:
        history = self.ts_delta_hist
        if len(history) >= MIN_FRAME_PERIOD_HISTORY_LENGTH:
            history.pop(0)
        smallest = min(history, default=ts_delta)
        history.append(ts_delta)
        return min(smallest, ts_delta)


class Estimator(RemoteBitrateEstimator):
    """aiortc's RemoteBitrateEstimator with the two parts above."""

    def __init__(self) -> None:
        super().__init__()
        self.incoming_bitrate = WindowCounter(self.incoming_bitrate._window_size, self.incoming_bitrate._scale)
        self.estimator = FramePeriodEstimator()
