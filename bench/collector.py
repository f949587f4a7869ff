"""The collector policy's effect on full-collection pauses, in one process, without a server.

A process holds `--connections` long-lived object graphs shaped like a waiting connection's
(objects with reference cycles, dicts, lists, bound methods) and then churns: every step makes
short-lived garbage (frames, pushes) and a few objects that stay (as a room's state grows),
for `--steps` steps. The garbage collector's pauses are timed in CPU time of this process
(time.process_time), so other processes on a shared machine do not inflate them. Printed for
the default collector (with the start-up freeze the server had), then with
`server.collector.CollectorPolicy` installed at the same point:

    python -m bench.collector [--connections 5000] [--steps 200000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from typing import Any

from server.collector import CollectorPolicy


class Conn:
    """Stands for a connection's objects: a cycle (connection <-> its writer), a queue, a dict."""

    def __init__(self, i: int) -> None:
        self.id = f"pat_{i:06d}"
        self.state: dict[str, Any] = {"waiting_since": i, "location": "home", "frames": [i, i + 1]}
        self.queue: list[Any] = []
        self.writer = Writer(self)
        self.handlers = [self.send, self.close]
        self.extra = [{"k": j} for j in range(20)]

    def send(self) -> None: ...

    def close(self) -> None: ...


class Writer:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.pending: list[Any] = []


def run(connections: int, steps: int, policy: bool) -> tuple[list[float], int]:
    gc.collect()
    pauses: list[tuple[int, float]] = []
    started = [0.0]

    def timer(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.process_time()
        else:
            pauses.append((info["generation"], time.process_time() - started[0]))

    collector = CollectorPolicy() if policy else None
    if collector:
        collector.install()
    else:
        gc.freeze()  # what the server did at start-up before the policy
    gc.callbacks.append(timer)
    try:
        conns = [Conn(i) for i in range(connections)]  # the sockets connect
        kept: list[Any] = []
        for step in range(steps):
            frame = {"type": "ping", "n": step, "payload": [step] * 4}  # short-lived
            frame["self"] = frame  # and cyclic, as a task's frame is
            if step % 50 == 0:
                kept.append({"admitted": step, "roster": [c.id for c in conns[:3]]})
    finally:
        gc.callbacks.remove(timer)
        if collector:
            collector.uninstall()
        else:
            gc.unfreeze()
    del conns, kept
    full = [p * 1000 for g, p in pauses if g == 2]
    return full, len(pauses)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collector", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=200_000)
    args = parser.parse_args()
    print(f"{args.connections} connections' objects, {args.steps} steps of churn; full-collection pauses in "
          "CPU ms of this process")
    print(f"{'collector':<28} {'collections':>11} {'full':>5} {'full max ms':>12} {'later max ms':>13} "
          f"{'full median ms':>15} {'full total ms':>14}")
    for name, policy in (("default (start-up freeze)", False), ("CollectorPolicy", True)):
        full, total = run(args.connections, args.steps, policy)
        print(f"{name:<28} {total:>11} {len(full):>5} {max(full, default=0):>12.1f} {max(full[1:], default=0):>13.1f} "
              f"{statistics.median(full) if full else 0:>15.1f} {sum(full):>14.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
