"""Two `porchlight serve` processes on one Redis: what crossing processes costs.

Process A runs the embedded Redis; process B uses it (same secret key). The session is opened
through B, so B hosts it. For each count N (default 1,000 then 5,000), in one run:

- **local**: N patients wait on sockets held by B, the host; `--admits` of them are admitted one
  at a time (POST .../admit to B) and the time from the POST to `admitted` on the socket is taken;
- **cross**: N other patients (another group, also hosted by B) wait on sockets held by A; the
  same admissions go to B, whose `admitted` frames cross to A over the bus.

Then the bus's cost per frame: every waiting patient of each phase sends one `activity` frame
(handled by the host), and the CPU time both processes spend (from /proc) is divided by the
frames: cross minus local is what relaying a frame costs. Figures are printed, not asserted; the
clients run in this process, on the same cores.

    python -m bench.scale_out [--counts 1000,5000] [--admits 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.waiting_room import (
    ADMIT_TIMEOUT,
    Patient,
    Staff,
    add_user,
    connect_patient,
    create_patients,
    login,
    percentile,
    post,
    raise_fd_limit,
    start_server,
    stop_server,
)
from server.store.embedded import EmbeddedRedis

KEY = "bench-scale-out-secret-key-" + "b" * 32
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


async def phase(http: aiohttp.ClientSession, host: str, sockets_at: str, fac: Staff, session_id: str,
                patients: list[Patient], admits: int, pids: list[int]) -> dict[str, float]:
    gate = asyncio.Semaphore(100)
    ws_url = sockets_at.replace("http", "ws", 1) + "/api/v1/ws"
    await asyncio.gather(*(connect_patient(http, ws_url, p, session_id, gate) for p in patients))
    waiting = [p for p in patients if p.ws is not None]
    if len(waiting) != len(patients):
        errors: dict[str, int] = {}
        for p in patients:
            if p.error:
                errors[p.error[:200]] = errors.get(p.error[:200], 0) + 1
        raise SystemExit(f"only {len(waiting)}/{len(patients)} patients got `waiting`: {errors}")
    await asyncio.sleep(2)
    # The bus per frame: one `activity` frame from every waiting patient, CPU of both processes.
    before = sum(cpu_seconds(pid) for pid in pids)
    for p in waiting:
        assert p.ws is not None
        await p.ws.send_str('{"type":"activity"}')
    await asyncio.sleep(3)  # handled long before; the same wait in both phases
    cpu = sum(cpu_seconds(pid) for pid in pids) - before
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    for p in random.Random(len(patients)).sample(waiting, min(admits, len(waiting))):
        p.waiter = loop.create_future()
        t0 = time.perf_counter()
        await post(http, host, fac, f"/sessions/{session_id}/admit", {"patient_ids": [p.id]})
        latencies.append((await asyncio.wait_for(p.waiter, ADMIT_TIMEOUT) - t0) * 1000)
    for p in patients:
        if p.ws is not None:
            with contextlib.suppress(Exception):
                await p.ws.close()
        if p.reader is not None:
            p.reader.cancel()
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "max": max(latencies),
            "cpu_per_frame_us": cpu / len(waiting) * 1e6, "admitted": len(latencies)}


async def run(n: int, admits: int) -> dict[str, dict[str, float]]:
    tmp = Path(tempfile.mkdtemp(prefix="plscale-"))
    a = b = None
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar())
    try:
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        a = await start_server(tmp / "a" / "data", 10.0, extra_env={"PORCHLIGHT_SECRET_KEY": KEY})
        b = await start_server(tmp / "b" / "data", 10.0, extra_env={
            "PORCHLIGHT_SECRET_KEY": KEY, "PORCHLIGHT_REDIS_URL": EmbeddedRedis(tmp / "a" / "data").url})
        await add_user(a, "bench_admin", "admin", "Bench Admin")
        await add_user(a, "bench_fac", "facilitator", "Bench Facilitator")
        admin, fac = await login(http, a.url, "bench_admin"), await login(http, a.url, "bench_fac")
        await asyncio.sleep(2)  # both have heartbeat: B is a live process when the sessions open
        out = {}
        for name, sockets_at in (("local", b.url), ("cross", a.url)):
            group = await post(http, a.url, admin, "/groups", {
                "name": f"Bench {name}", "program": "IOP", "facilitator_ids": [fac.user_id], "capacity": 500}, 201)
            patients = await create_patients(http, a.url, admin, [group["id"]], n, 8)
            session = await post(http, b.url, fac, f"/groups/{group['id']}/sessions", {}, 201)
            out[name] = await phase(http, b.url, sockets_at, fac, session["id"], patients, admits,
                                    [a.pid, b.pid])
            print(f"  {n} waiting, sockets on {'the host' if name == 'local' else 'the other process'}: "
                  f"admit p50 {out[name]['p50']:.1f} ms, p99 {out[name]['p99']:.1f} ms, max {out[name]['max']:.1f} ms;"
                  f" {out[name]['cpu_per_frame_us']:.0f} µs CPU per frame", flush=True)
        return out
    finally:
        await http.close()
        for server in (b, a):
            if server is not None:
                await stop_server(server)
        shutil.rmtree(tmp, ignore_errors=True)


async def amain(args: argparse.Namespace) -> None:
    raise_fd_limit()
    rows = []
    for n in (int(c) for c in args.counts.split(",")):
        print(f"\n== {n} patients waiting ==", flush=True)
        rows.append((n, await run(n, args.admits)))
    print("\n| waiting | sockets on | admit p50 | p99 | max | CPU per frame (both processes) |")
    print("|---|---|---|---|---|---|")
    for n, out in rows:
        for name in ("local", "cross"):
            r = out[name]
            print(f"| {n} | {'the host' if name == 'local' else 'another process'} | {r['p50']:.1f} ms | "
                  f"{r['p99']:.1f} ms | {r['max']:.1f} ms | {r['cpu_per_frame_us']:.0f} µs |")
        bus = out["cross"]["cpu_per_frame_us"] - out["local"]["cpu_per_frame_us"]
        print(f"| {n} | cross/local | {out['cross']['p50'] / out['local']['p50']:.2f}x | "
              f"{out['cross']['p99'] / out['local']['p99']:.2f}x | | bus: {bus:+.0f} µs per frame |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1000,5000")
    parser.add_argument("--admits", type=int, default=200)
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
