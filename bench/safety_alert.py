"""How fast a self-harm answer reaches the staff, and what questionnaires cost a check-in.

In one process: a real redis-server (AOF fsync always, like the embedded default), the app on
loopback (aiohttp test server), real WebSocket clients. It measures

- check-in: hello -> `waiting`, and hello -> the last `questionnaire` frame, for a group that
  asks PHQ-9 and GAD-7 and for one that asks nothing (each patient checks in once);
- the alert: a PHQ-9 with item 9 above 0 sent -> `safety_alert` received on every one of S staff
  sockets watching the group (the contract's bound is 1 s), for S = 1, 10, 50.

Printed, never asserted.   python -m bench.safety_alert [--patients 200] [--staff 1,10,50]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.auth.staff import Role
from server.clock import SystemClock
from server.settings import Settings
from server.store.connection import connect
from tests.conftest import RedisServer
from tests.helpers import Api, Socket

ITEM9 = {str(n): 0 for n in range(1, 9)} | {"9": 1}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def check_ins(api: Api, tokens: list[str], expect_questionnaires: int) -> tuple[list[float], list[float]]:
    waiting, last = [], []
    for token in tokens:
        sock = await api.ws()
        started = time.perf_counter()
        await sock.send({"type": "hello", "token": token, "location": "home"})
        await sock.until("waiting")
        waiting.append(time.perf_counter() - started)
        for _ in range(expect_questionnaires):
            await sock.until("questionnaire")
        last.append(time.perf_counter() - started)
        await sock.close()
    return waiting, last


async def alerts(api: Api, tokens: list[str], staff: list[Socket]) -> list[float]:
    """Each patient answers item 9 once: the time until the last staff socket has the alert."""
    spans = []
    for token in tokens:
        sock = await api.patient(token)
        offered = await sock.until("questionnaire")
        started = time.perf_counter()
        await sock.send({"type": "questionnaire_response", "id": offered["id"], "answers": ITEM9})
        await asyncio.gather(*(s.until("safety_alert") for s in staff))
        spans.append(time.perf_counter() - started)
        await sock.close()
    return spans


async def amain(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="plbench-alerts-"))
    redis_server = RedisServer(tmp)
    redis_server.start()
    redis = connect(redis_server.url)
    await redis.config_set("appendonly", "yes")
    await redis.config_set("appendfsync", "always")
    settings = Settings(data_dir=tmp, secret_key="bench-secret-" + "x" * 32, public_url="http://porchlight.bench",
                        heartbeat_timeout_seconds=600, staff_idle_timeout_seconds=3600)
    client = TestClient(TestServer(create_app(settings, redis=redis, clock=SystemClock())))
    await client.start_server()
    try:
        api = Api(client, redis, SystemClock(), settings)  # type: ignore[arg-type]
        admin = await api.staff("admin", Role.ADMIN)
        rows = []
        for asks in ([], [{"instrument": "PHQ-9", "every": "session"}, {"instrument": "GAD-7", "every": "session"}]):
            world = await _group(api, admin, args.patients, asks)
            waiting, last = await check_ins(api, world, len(asks))
            rows.append((f"check-in, {len(asks)} questionnaires", waiting, last))
        print(f"python {platform.python_version()}, {platform.system()} {platform.machine()}; clients in this "
              f"process; redis AOF fsync always; {args.patients} patients check in one after another")
        print(f"{'run':<28} {'waiting p50 ms':>14} {'p99':>7} {'last frame p50 ms':>17} {'p99':>7}")
        for label, waiting, last in rows:
            print(f"{label:<28} {pct(waiting, .5):>14.1f} {pct(waiting, .99):>7.1f} {pct(last, .5):>17.1f} "
                  f"{pct(last, .99):>7.1f}")
        print(f"\n{'staff sockets':>13} {'answers':>8} {'alert at all p50 ms':>19} {'p99':>7} {'max':>7}")
        for count in [int(c) for c in args.staff.split(",")]:
            asks = [{"instrument": "PHQ-9", "every": "session"}]
            tokens = await _group(api, admin, args.answers, asks)
            group_id = api.last_group
            staff = [await api.staff_socket(admin, group_id=group_id) for _ in range(count)]
            spans = await alerts(api, tokens, staff)
            print(f"{count:>13} {len(spans):>8} {pct(spans, .5):>19.1f} {pct(spans, .99):>7.1f} "
                  f"{max(spans) * 1000:>7.1f}")
            for s in staff:
                await s.close()
        print(f"(mean of the last run {statistics.mean(spans) * 1000:.1f} ms; the contract's bound: 1000 ms)")
    finally:
        await client.close()
        await redis.aclose()
        redis_server.stop()
    return 0


async def _group(api: Api, admin: Any, patients: int, asks: list[dict[str, str]]) -> list[str]:
    group = await api.post(admin, "/groups", {"name": f"Bench {time.time_ns()}", "program": "IOP",
                                              "facilitator_ids": [admin.user_id], "questionnaires": asks,
                                              "capacity": 500}, expect=201)
    api.last_group = group["id"]  # type: ignore[attr-defined]
    tokens = []
    for i in range(patients):
        patient = await api.post(admin, "/patients", {"display_name": f"P{i}"}, expect=201)
        enrollment = await api.post(admin, f"/groups/{group['id']}/enrollments", {"patient_id": patient["id"]},
                                    expect=201)
        tokens.append(enrollment["join_url"].rsplit("/j/", 1)[1])
    await api.post(admin, f"/groups/{group['id']}/sessions", expect=201)
    return tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=200, help="check-ins per group")
    parser.add_argument("--answers", type=int, default=50, help="item-9 answers per staff count")
    parser.add_argument("--staff", default="1,10,50", help="staff sockets watching the group")
    return asyncio.run(amain(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
