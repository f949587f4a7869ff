"""How long finalising a session with a very long record stalls the event loop.

A patient who repeats `media_state` used to add an event per frame (46,607 events in the
hardening review). Finalisation now computes attendance in a worker thread; this prints the
longest gap a 1 ms ticker on the loop sees, with the computation on the loop and off it, in
one run:

    .venv/bin/python -m bench.finalise_stall [--events 46607]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from server.attendance.finalise import _attendance_of


def long_record(media_events: int, patients: int = 12) -> list[str]:
    raws, seq = [], 0
    for p in range(patients):
        for kind, extra in (("waiting", {}), ("admitted", {"by": "u"}), ("joined", {"reconnect": False})):
            raws.append(json.dumps({"type": kind, "session_id": "s", "patient_id": f"p{p}", "at": 1, "seq": seq,
                                    **extra}))
            seq += 1
    for i in range(media_events):
        raws.append(json.dumps({"type": "media_state", "session_id": "s", "patient_id": "p0", "at": 2 + i,
                                "audio": i % 2 == 0, "video": False}))
    return raws


async def longest_stall(raws: list[str], threaded: bool) -> tuple[float, float]:
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    if threaded:
        facts = await asyncio.to_thread(_attendance_of, raws, 0, 10**9)
    else:
        facts = _attendance_of(raws, 0, 10**9)
    took = time.perf_counter() - started
    done.set()
    await ticker
    assert len(facts) == 12, "every patient's attendance was computed"
    return took, max(gaps)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=46607)
    args = parser.parse_args()
    raws = long_record(args.events)
    on_loop = await longest_stall(raws, threaded=False)
    off_loop = await longest_stall(raws, threaded=True)
    for name, (took, stall) in (("on the loop", on_loop), ("worker thread", off_loop)):
        print(f"{name:<14} compute {took * 1000:7.0f} ms   longest loop stall {stall * 1000:7.1f} ms")
    print(f"stall ratio (on the loop / worker thread): {on_loop[1] / off_loop[1]:.0f}x")


if __name__ == "__main__":
    asyncio.run(main())
