"""What the replica confirmation (WAIT 1 after each MULTI/EXEC) costs, and how long a failover
leaves the deployment without a master.

Starts a real master, replica and Sentinels (`tools.sentinel`), then times an attendance commit
(the HSET of patient states and the RPUSH of their events, one MULTI/EXEC, as `lobby/persist.py`
writes it) through the plain client on the master's own address and through the Sentinel client,
which adds WAIT 1. Then it kills the master (SIGKILL) and times, from the kill, the first commit
the Sentinel client completes again.

    .venv/bin/python -m bench.sentinel [--commits 2000] [--sentinels 1] [--down-after-ms 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from server.store import sentinel
from server.store.connection import UNAVAILABLE, Redis, connect
from tools.sentinel import SentinelDeployment

EVENT = json.dumps({"type": "joined", "session_id": "ses_bench", "patient_id": "pat_bench", "at": 0, "seq": 0,
                    "reconnect": False})


async def commit(client: Redis, n: int) -> None:
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset("pl:session:ses_bench:patients", "pat_bench", json.dumps({"state": "admitted", "n": n}))
        pipe.rpush("pl:session:ses_bench:events", EVENT)
        await pipe.execute()


async def timed(client: Redis, commits: int) -> list[float]:
    times = []
    for n in range(commits):
        started = time.perf_counter()
        await commit(client, n)
        times.append((time.perf_counter() - started) * 1000)
    return times


def line(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return f"  {name:<34} p50 {statistics.median(ordered):6.3f} ms   p99 {p99:6.3f} ms   max {ordered[-1]:6.3f} ms"


async def main(commits: int, sentinels: int, down_after_ms: int) -> None:
    with tempfile.TemporaryDirectory(prefix="porchlight-bench-sentinel-") as tmp:
        deployment = SentinelDeployment(Path(tmp), sentinels=sentinels, down_after_ms=down_after_ms)
        await asyncio.to_thread(deployment.start)
        plain = connect(f"redis://127.0.0.1:{deployment.master_port}/0")
        followed = connect(deployment.url)
        assert isinstance(followed, sentinel.SentinelRedis)
        try:
            await timed(plain, 200)
            await timed(followed, 200)  # warm both pools
            print(f"{commits} attendance commits (HSET + RPUSH in MULTI/EXEC), one at a time, loopback, "
                  f"{deployment.binary.rsplit('/', 1)[-1]} master + 1 replica:")
            rounds: dict[str, list[float]] = {"master directly (no WAIT)": [], "Sentinel client (WAIT 1)": []}
            for _ in range(2):  # alternate, so a busy moment of the machine does not favour one side
                rounds["master directly (no WAIT)"] += await timed(plain, commits // 2)
                rounds["Sentinel client (WAIT 1)"] += await timed(followed, commits // 2)
            for name, times in rounds.items():
                print(line(name, times))
            print(f"  unconfirmed by the replica: {followed.replicas.unconfirmed}")

            killed_at = time.monotonic()
            old = await asyncio.to_thread(deployment.kill_master)
            failed = 0
            while True:
                try:
                    await commit(followed, 0)
                    break
                except UNAVAILABLE:
                    failed += 1
                    await asyncio.sleep(0.02)
            back = time.monotonic() - killed_at
            print(f"master killed (SIGKILL): commits again after {back:.2f} s ({failed} refused meanwhile); "
                  f"{len(deployment.sentinel_ports)} Sentinel(s), down-after {down_after_ms} ms, "
                  f"new master :{deployment.master()[1]} (was :{old})")
        finally:
            await plain.aclose()
            await followed.aclose()
            await asyncio.to_thread(deployment.stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--sentinels", type=int, default=1)
    parser.add_argument("--down-after-ms", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.commits, args.sentinels, args.down_after_ms))
