"""The receive-side bandwidth estimate (server/media/estimate.py) gives what aiortc's gives, packet
by packet, on streams that keep steady, build up a queue (overuse), drain it, and pause."""

from __future__ import annotations

import random

import pytest
from aiortc.rate import RemoteBitrateEstimator

from server.media.estimate import Estimator


def stream(seed: int) -> list[tuple[int, int, int, int]]:
    """(arrival ms, abs-send-time, payload size, SSRC): frames of a few packets at 15-30 fps, a
    link whose queue grows and drains in phases, jitter, and now and then a pause of over a second."""
    rng = random.Random(seed)
    packets = []
    send_ms = 1_000.0
    queue_ms = 0.0
    growth = 0.0
    for frame in range(1500):
        if frame % 150 == 0:
            growth = rng.choice([0.0, 0.0, 2.0, 6.0, -4.0])  # steady, overuse, or draining
        if rng.random() < 0.004:
            send_ms += rng.uniform(1000, 2500)  # a pause: the bitrate window empties
        send_ms += rng.choice([33.3, 66.7, 50.0])
        queue_ms = max(0.0, queue_ms + growth + rng.uniform(-1.5, 1.5))
        for i in range(rng.randint(1, 6)):
            sent = send_ms + i * 0.2
            arrival = int(sent + 20 + queue_ms + rng.uniform(0, 2))
            abs_send_time = int(sent / 1000 * 262144) & 0xFFFFFF
            packets.append((arrival, abs_send_time, rng.randint(200, 1200), rng.choice([1111, 2222])))
    packets.sort()  # arrival order
    return packets


@pytest.mark.parametrize("seed", range(8))
def test_each_packet_gets_aiortcs_estimate(seed: int) -> None:
    theirs, ours = RemoteBitrateEstimator(), Estimator()
    estimates = 0
    for arrival, abs_send_time, size, ssrc in stream(seed):
        expected = theirs.add(arrival_time_ms=arrival, abs_send_time=abs_send_time, payload_size=size, ssrc=ssrc)
        got = ours.add(arrival_time_ms=arrival, abs_send_time=abs_send_time, payload_size=size, ssrc=ssrc)
        assert got == expected
        estimates += expected is not None
        assert ours.incoming_bitrate.rate(arrival) == theirs.incoming_bitrate.rate(arrival)
        assert ours.detector.state() == theirs.detector.state()
    assert estimates > 10  # the streams did move the estimate (REMB would have gone out)
