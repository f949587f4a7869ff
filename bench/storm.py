"""/healthz under a connection storm and a request burst, against one real `porchlight serve`.

For each mode a fresh server is started on its embedded Redis in a temporary data dir (the
helpers of bench/waiting_room.py). Setup over HTTP: an admin and a facilitator, one group, one
patient enrolled and waiting on a WebSocket in an open session. Then, measured from outside:

- at rest: `--samples` /healthz requests one after another, p50 and p99;
- storm: `--storm` anonymous WebSockets that never say hello, opened from `--addresses`
  loopback source addresses (127.0.0.2, ...) with at most 100 handshakes in flight, while
  /healthz is sampled one request after another; how many the server took and refused, and
  its RSS before and once all were tried;
- burst: `--burst` requests at once on fresh connections, half /healthz and half the patient's
  join page (anonymous, reads Redis), with the facilitator admitting the patient in the middle:
  /healthz and join-page latency, how many answers were 5xx, and whether the admission worked.

Modes: `after` runs the server as configured by default; `before` sets the settings back to the
old Redis pool (100 connections that fail at once when all are busy, 5 s command timeout) and
lifts the caps on sockets before hello. One thing `before` cannot restore is the health check
sharing the pool: /healthz now always has its own connection.

Loopback only; at most `--storm` sockets and `--burst` requests per mode. Figures are printed,
not asserted; the clients run in this process, on the same cores as the server.

    python -m bench.storm [--modes before,after] [--storm 4000] [--burst 300] [--samples 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.waiting_room import (
    Server,
    add_user,
    login,
    percentile,
    post,
    proc_kb,
    raise_fd_limit,
    start_server,
    stop_server,
    timed,
)

MODES: dict[str, dict[str, str]] = {
    "after": {},
    "before": {
        "PORCHLIGHT_REDIS_POOL_SIZE": "100",
        "PORCHLIGHT_REDIS_POOL_TIMEOUT_SECONDS": "0",
        "PORCHLIGHT_REDIS_TIMEOUT_SECONDS": "5",
        "PORCHLIGHT_WS_BEFORE_HELLO_PER_ADDRESS": "1000000",
        "PORCHLIGHT_WS_BEFORE_HELLO_MAX": "1000000",
    },
}
HANDSHAKES_IN_FLIGHT = 100
PHASE_TIMEOUT = 120.0  # seconds: any phase longer than this is cut short


@dataclass
class Result:
    mode: str
    rest_ms: list[float] = field(default_factory=list)
    storm_ms: list[float] = field(default_factory=list)
    storm_failed_health: int = 0
    storm_accepted: int = 0
    storm_refused: int = 0
    storm_errors: dict[str, int] = field(default_factory=dict)
    storm_s: float = math.nan
    rss_rest_kb: int = 0
    rss_storm_kb: int = 0
    burst_health_ms: list[float] = field(default_factory=list)
    burst_page_ms: list[float] = field(default_factory=list)
    burst_statuses: dict[int, int] = field(default_factory=dict)
    burst_s: float = math.nan
    admit_status: int = 0
    admit_ms: float = math.nan
    admitted: bool = False
    log_problems: list[str] = field(default_factory=list)

    @property
    def burst_5xx(self) -> int:
        return sum(count for status, count in self.burst_statuses.items() if status >= 500)


async def sample_health(http: aiohttp.ClientSession, base: str, count: int | None,
                        until: asyncio.Event | None = None) -> tuple[list[float], int]:
    """Sequential /healthz: `count` of them, or until `until` is set. (200 latencies, failures)."""
    latencies: list[float] = []
    failed = 0
    while (count is None or len(latencies) + failed < count) and not (until is not None and until.is_set()):
        status, ms = await timed(http, "GET", f"{base}/healthz")
        if status == 200:
            latencies.append(ms)
        else:
            failed += 1
    return latencies, failed


async def storm(base: str, total: int, sessions: list[aiohttp.ClientSession],
                result: Result) -> list[aiohttp.ClientWebSocketResponse]:
    """Open `total` idle WebSockets (no hello), spread over the sessions' source addresses."""
    addresses = len(sessions)
    gate = asyncio.Semaphore(HANDSHAKES_IN_FLIGHT)
    opened: list[aiohttp.ClientWebSocketResponse] = []
    ws_url = base.replace("http", "ws", 1) + "/api/v1/ws"

    async def one(i: int) -> None:
        async with gate:
            try:
                opened.append(await sessions[i % addresses].ws_connect(ws_url, autoping=False, max_msg_size=0))
                result.storm_accepted += 1
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status == 429:
                    result.storm_refused += 1
                else:
                    key = f"handshake {exc.status}"
                    result.storm_errors[key] = result.storm_errors.get(key, 0) + 1
            except (aiohttp.ClientError, OSError) as exc:
                key = type(exc).__name__
                result.storm_errors[key] = result.storm_errors.get(key, 0) + 1

    await asyncio.gather(*(one(i) for i in range(total)))
    return opened


async def run_mode(mode: str, args: argparse.Namespace) -> Result:
    result = Result(mode)
    tmp = Path(tempfile.mkdtemp(prefix="plstorm-", dir=args.tmp))
    server: Server | None = None
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar())
    patient_ws: aiohttp.ClientWebSocketResponse | None = None
    idle: list[aiohttp.ClientWebSocketResponse] = []
    # One client session per loopback source address, as if from that many clients.
    storm_sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, local_addr=(f"127.0.0.{2 + i}", 0)),
                                            cookie_jar=aiohttp.DummyCookieJar()) for i in range(args.addresses)]
    try:
        print(f"\n== {mode} ==", flush=True)
        server = await start_server(tmp / "data", 10.0, extra_env=MODES[mode])
        base = server.url
        await add_user(server, "storm_admin", "admin", "Storm Admin")
        await add_user(server, "storm_fac", "facilitator", "Storm Facilitator")
        admin = await login(http, base, "storm_admin")
        fac = await login(http, base, "storm_fac")
        group = await post(http, base, admin, "/groups", {
            "name": "Storm IOP", "program": "IOP", "facilitator_ids": [fac.user_id]}, 201)
        patient = await post(http, base, admin, "/patients", {"display_name": "Storm Patient"}, 201)
        enrollment = await post(http, base, admin, f"/groups/{group['id']}/enrollments",
                                {"patient_id": patient["id"]}, 201)
        token = enrollment["join_url"].rsplit("/j/", 1)[1]
        session = await post(http, base, fac, f"/groups/{group['id']}/sessions", {}, 201)
        patient_ws = await http.ws_connect(base.replace("http", "ws", 1) + "/api/v1/ws")
        await patient_ws.send_json({"type": "hello", "token": token, "location": "home"})
        first = await patient_ws.receive_json(timeout=10)
        assert first["type"] == "waiting", first
        print(f"  server pid {server.pid} at {base}; one patient waiting in {session['id']}", flush=True)

        async with asyncio.timeout(PHASE_TIMEOUT):
            await sample_health(http, base, 20)  # warm-up: connections made, code paths run once
            result.rest_ms, _ = await sample_health(http, base, args.samples)
            result.rss_rest_kb = proc_kb(server.pid, "VmRSS")
        print(f"  rest: /healthz p50 {percentile(result.rest_ms, 50):.1f} ms, "
              f"p99 {percentile(result.rest_ms, 99):.1f} ms", flush=True)

        async with asyncio.timeout(PHASE_TIMEOUT):
            done = asyncio.Event()
            sampler = asyncio.create_task(sample_health(http, base, None, done))
            t0 = time.perf_counter()
            idle = await storm(base, args.storm, storm_sessions, result)
            result.storm_s = time.perf_counter() - t0
            result.rss_storm_kb = proc_kb(server.pid, "VmRSS")
            await asyncio.sleep(1.0)  # the storm held: sampling goes on a moment with every socket open
            done.set()
            result.storm_ms, result.storm_failed_health = await sampler
        print(f"  storm: {result.storm_accepted} sockets taken, {result.storm_refused} refused (429), "
              f"errors {result.storm_errors or 'none'} in {result.storm_s:.1f} s; /healthz p50 "
              f"{percentile(result.storm_ms, 50):.1f} ms, p99 {percentile(result.storm_ms, 99):.1f} ms "
              f"({len(result.storm_ms)} answered 200, {result.storm_failed_health} not)", flush=True)
        for sock in idle:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sock.close(), 5)
        idle.clear()
        await asyncio.sleep(1.0)  # let the server finish closing them before the burst

        async with asyncio.timeout(PHASE_TIMEOUT):
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True),
                                             cookie_jar=aiohttp.DummyCookieJar()) as burst_http:
                def request(i: int) -> asyncio.Task[tuple[int, float]]:
                    path = "/healthz" if i % 2 else f"/j/{token}"
                    return asyncio.create_task(timed(burst_http, "GET", base + path))

                t0 = time.perf_counter()
                first_half = [request(i) for i in range(args.burst // 2)]
                await asyncio.sleep(0)

                async def admit() -> tuple[int, float]:
                    a0 = time.perf_counter()
                    async with burst_http.post(f"{base}/api/v1/sessions/{session['id']}/admit",
                                               json={"patient_ids": [patient["id"]]}, headers=fac.headers()) as resp:
                        await resp.read()
                        return resp.status, (time.perf_counter() - a0) * 1000

                admitting = asyncio.create_task(admit())
                second_half = [request(i) for i in range(args.burst // 2, args.burst)]
                answers = await asyncio.gather(*first_half, *second_half)
                result.admit_status, result.admit_ms = await admitting
                result.burst_s = time.perf_counter() - t0
            for i, (status, ms) in enumerate(answers):
                result.burst_statuses[status] = result.burst_statuses.get(status, 0) + 1
                if status == 200:
                    (result.burst_health_ms if i % 2 else result.burst_page_ms).append(ms)
            with contextlib.suppress(TimeoutError):
                while True:
                    frame = await patient_ws.receive_json(timeout=5)
                    if frame.get("type") == "admitted":
                        result.admitted = True
                        break
        statuses = dict(sorted(result.burst_statuses.items()))
        print(f"  burst of {args.burst} in {result.burst_s:.2f} s: statuses {statuses}; "
              f"/healthz p50 {percentile(result.burst_health_ms, 50):.1f} ms, "
              f"p99 {percentile(result.burst_health_ms, 99):.1f} ms; admit {result.admit_status} in "
              f"{result.admit_ms:.0f} ms, patient admitted: {result.admitted}", flush=True)
    finally:
        for sock in idle:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sock.close(), 5)
        for storm_session in storm_sessions:
            await storm_session.close()
        if patient_ws is not None:
            await patient_ws.close()
        await http.close()
        if server is not None:
            await stop_server(server)
            result.log_problems = server.log_problems()
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def report(results: list[Result], args: argparse.Namespace) -> None:
    print("\n== /healthz under a storm of idle WebSockets and a request burst ==")
    cpus = os.cpu_count()
    print(f"python {platform.python_version()}, aiohttp {aiohttp.__version__}, {platform.system()} "
          f"{platform.machine()}, cpu_count {cpus}; storm {args.storm} sockets from {args.addresses} loopback "
          f"addresses; burst {args.burst} (half /healthz, half a join page) with one admission; "
          "clients in this process")
    print(f"{'mode':>6} {'rest p50':>9} {'rest p99':>9} {'storm p50':>10} {'storm p99':>10} {'taken':>6} "
          f"{'refused':>8} {'RSS rest MB':>12} {'RSS storm MB':>13} {'burst p50':>10} {'burst p99':>10} "
          f"{'burst 5xx':>10} {'admit':>6}")
    for r in results:
        print(f"{r.mode:>6} {percentile(r.rest_ms, 50):>9.1f} {percentile(r.rest_ms, 99):>9.1f} "
              f"{percentile(r.storm_ms, 50):>10.1f} {percentile(r.storm_ms, 99):>10.1f} {r.storm_accepted:>6} "
              f"{r.storm_refused:>8} {r.rss_rest_kb / 1024:>12.1f} {r.rss_storm_kb / 1024:>13.1f} "
              f"{percentile(r.burst_health_ms, 50):>10.1f} {percentile(r.burst_health_ms, 99):>10.1f} "
              f"{r.burst_5xx:>10} {r.admit_status:>6}")
    print("  latencies in ms (/healthz answered 200); taken: storm sockets the server upgraded (it closes those "
          "without hello after 10 s); RSS: the server's Python process, at rest and once every storm socket was tried")
    by_mode = {r.mode: r for r in results}
    if "before" in by_mode and "after" in by_mode:
        b, a = by_mode["before"], by_mode["after"]

        def ratio(after: float, before: float) -> str:
            return f"{after / before:.2f}" if before and not math.isnan(before) and not math.isnan(after) else "n/a"

        storm_p99 = ratio(percentile(a.storm_ms, 99), percentile(b.storm_ms, 99))
        print(f"ratio after/before: storm /healthz p99 {storm_p99}, "
              f"RSS growth in the storm {ratio(a.rss_storm_kb - a.rss_rest_kb, b.rss_storm_kb - b.rss_rest_kb)}, "
              f"burst /healthz p99 {ratio(percentile(a.burst_health_ms, 99), percentile(b.burst_health_ms, 99))}, "
              f"burst 5xx {a.burst_5xx} vs {b.burst_5xx}")
    for r in results:
        if r.log_problems:
            print(f"  {r.mode}: server log has {len(r.log_problems)} warning/error lines, first: "
                  f"{r.log_problems[0][:200]}")


async def main_async(args: argparse.Namespace) -> None:
    soft, hard = raise_fd_limit()
    if soft < args.storm * 2 + 200:
        print(f"! the file-descriptor limit is {soft}; the storm may fail to open every socket", flush=True)
    results = [await run_mode(mode, args) for mode in args.modes.split(",")]
    report(results, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="before,after", help="comma-separated: before, after")
    parser.add_argument("--storm", type=int, default=4000, help="idle WebSockets to open")
    parser.add_argument("--addresses", type=int, default=40, help="loopback source addresses they come from")
    parser.add_argument("--burst", type=int, default=300, help="requests sent at once")
    parser.add_argument("--samples", type=int, default=200, help="/healthz requests at rest")
    parser.add_argument("--tmp", default=None, help="directory for the data dir (e.g. /dev/shm)")
    args = parser.parse_args()
    if any(mode not in MODES for mode in args.modes.split(",")):
        parser.error(f"--modes: from {', '.join(MODES)}")
    if not 1 <= args.addresses <= 250:
        parser.error("--addresses: 1 to 250")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
