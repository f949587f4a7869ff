"""Other requests while a burst of sign-ins arrives, against one real `porchlight serve`.

For each mode a fresh server is started on its embedded Redis in a temporary data dir (the
helpers of bench/waiting_room.py). Staff accounts are written straight into that Redis with
the server's own `create_user` (argon2id, as sign-ins will check them). Then, measured from
outside:

- at rest: `--samples` requests one after another, alternating GET /healthz and an
  authenticated GET /api/v1/me, p50 and p99 of each;
- burst: `--burst` sign-ins at once on fresh connections from `--addresses` loopback source
  addresses (127.0.0.2, ...), half with a wrong password for one account, half with the right
  one for another, spread so no address or account reaches a sign-in limit; meanwhile the
  same two requests are sampled one after another. Printed: their p50/p99, the sign-ins'
  statuses and latency, and the server process's CPU seconds (user+system, not redis-server)
  from the burst's start to its last answer.

Modes: `after` runs the defaults (2 password checks at once, 32 waiting, then 503); `unbounded`
lets 6 checks run at once (what asyncio.to_thread's default pool gives on 2 cores, as before
the limit) with no bound on those waiting.

Loopback only; at most `--burst` sign-ins per mode, every phase cut at 120 s. Figures are
printed, not asserted; the clients run in this process, on the same cores as the server.

    python -m bench.sign_in [--modes unbounded,after] [--burst 200] [--addresses 20] [--samples 200]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.media import cpu_seconds
from bench.waiting_room import (
    COOKIE_NAME,
    PASSWORD,
    Server,
    percentile,
    start_server,
    stop_server,
    timed,
)
from server.auth.staff import Role, create_user
from server.store.connection import connect
from server.store.embedded import socket_path_for

MODES: dict[str, dict[str, str]] = {
    "after": {},
    "unbounded": {"PORCHLIGHT_PASSWORD_CHECKS_AT_ONCE": "6", "PORCHLIGHT_PASSWORD_CHECKS_QUEUE": "100000"},
}
PHASE_TIMEOUT = 120.0  # seconds: any phase longer than this is cut short


@dataclass
class Result:
    mode: str
    rest: dict[str, list[float]] = field(default_factory=lambda: {"healthz": [], "me": []})
    during: dict[str, list[float]] = field(default_factory=lambda: {"healthz": [], "me": []})
    failed_samples: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    sign_in_ms: list[float] = field(default_factory=list)
    burst_s: float = math.nan
    cpu_s: float = math.nan
    log_problems: list[str] = field(default_factory=list)


async def sample(http: aiohttp.ClientSession, base: str, cookie: str, into: dict[str, list[float]],
                 count: int | None, until: asyncio.Event | None = None) -> int:
    """/healthz and /api/v1/me in turn, one after another; returns how many did not answer 200."""
    failed = 0
    i = 0
    while (count is None or i < count) and not (until is not None and until.is_set()):
        name, path, headers = (("healthz", "/healthz", {}) if i % 2 == 0 else
                               ("me", "/api/v1/me", {"Cookie": f"{COOKIE_NAME}={cookie}"}))
        status, ms = await timed(http, "GET", base + path, headers=headers)
        if status == 200:
            into[name].append(ms)
        else:
            failed += 1
        i += 1
    return failed


async def sign_in(http: aiohttp.ClientSession, base: str, username: str, password: str) -> tuple[int, float]:
    return await timed(http, "POST", f"{base}/api/v1/login", json={"username": username, "password": password})


async def run_mode(mode: str, args: argparse.Namespace) -> Result:
    result = Result(mode)
    tmp = Path(tempfile.mkdtemp(prefix="plsignin-", dir=args.tmp))
    server: Server | None = None
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar())
    # Fresh connections per sign-in, from many source addresses, as if from that many clients.
    burst_sessions = [aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=True, local_addr=(f"127.0.0.{2 + i}", 0)),
        cookie_jar=aiohttp.DummyCookieJar()) for i in range(args.addresses)]
    try:
        print(f"\n== {mode} ==", flush=True)
        server = await start_server(tmp / "data", 10.0, extra_env=MODES[mode])
        base = server.url
        # Half the burst signs in right, half wrong; each account takes a share too small to
        # be locked out (5 failures per address), so every sign-in is hashed.
        accounts = max(1, args.burst // 4)
        redis = connect(f"unix://{socket_path_for(server.data_dir)}")
        try:
            await create_user(redis, "bench_admin", PASSWORD, Role.ADMIN, "Bench Admin")
            for i in range(accounts):
                await create_user(redis, f"bench_user{i}", PASSWORD, Role.FACILITATOR, f"Bench User {i}")
        finally:
            await redis.aclose()
        async with http.post(f"{base}/api/v1/login", json={"username": "bench_admin", "password": PASSWORD}) as resp:
            assert resp.status == 200, await resp.text()
            cookie = resp.cookies[COOKIE_NAME].value
        print(f"  server pid {server.pid} at {base}; {accounts} accounts", flush=True)

        async with asyncio.timeout(PHASE_TIMEOUT):
            await sample(http, base, cookie, {"healthz": [], "me": []}, 20)  # warm-up
            result.failed_samples += await sample(http, base, cookie, result.rest, args.samples)

        async with asyncio.timeout(PHASE_TIMEOUT):
            done = asyncio.Event()
            sampler = asyncio.create_task(sample(http, base, cookie, result.during, None, done))
            await asyncio.sleep(0.05)  # the sampler is running before the burst starts
            cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
            burst = [sign_in(burst_sessions[i % args.addresses], base, f"bench_user{(i // 2) % accounts}",
                             PASSWORD if i % 2 else "wrong password") for i in range(args.burst)]
            answers = await asyncio.gather(*burst)
            result.burst_s = time.perf_counter() - t0
            result.cpu_s = cpu_seconds(server.pid) - cpu0
            done.set()
            result.failed_samples += await sampler
        for status, ms in answers:
            result.statuses[status] = result.statuses.get(status, 0) + 1
            result.sign_in_ms.append(ms)
        print(f"  burst of {args.burst} sign-ins in {result.burst_s:.2f} s, server CPU {result.cpu_s:.2f} s; "
              f"statuses {dict(sorted(result.statuses.items()))}", flush=True)
    finally:
        for session in burst_sessions:
            await session.close()
        await http.close()
        if server is not None:
            await stop_server(server)
            result.log_problems = server.log_problems()
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def report(results: list[Result], args: argparse.Namespace) -> None:
    def p(values: list[float]) -> str:
        return f"{percentile(values, 50):7.1f} {percentile(values, 99):7.1f}"

    print("\n== other requests at rest and during a burst of sign-ins ==")
    print(f"python {platform.python_version()}, cpu_count 2 shared; burst {args.burst} sign-ins "
          f"(half wrong, half right) from {args.addresses} loopback addresses")
    print("mode       healthz rest p50/p99  me rest p50/p99  healthz burst p50/p99  me burst p50/p99  "
          "sign-in p50/p99 ms  burst s  server CPU s  cores  statuses")
    for r in results:
        cores = r.cpu_s / r.burst_s if r.burst_s else math.nan
        print(f"{r.mode:<10} {p(r.rest['healthz'])}      {p(r.rest['me'])}  {p(r.during['healthz'])}        "
              f"{p(r.during['me'])}   {p(r.sign_in_ms)}      {r.burst_s:6.2f}  {r.cpu_s:12.2f}  {cores:5.2f}  "
              f"{dict(sorted(r.statuses.items()))}")
        extra = f"samples not 200: {r.failed_samples}; during the burst {len(r.during['healthz'])} healthz, " \
                f"{len(r.during['me'])} me"
        print(f"           {extra}; server log problems: {len(r.log_problems) or 'none'}")


async def main_async(args: argparse.Namespace) -> None:
    results = [await run_mode(mode, args) for mode in args.modes.split(",")]
    report(results, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="unbounded,after", help="comma-separated: unbounded, after")
    parser.add_argument("--burst", type=int, default=200, help="sign-ins sent at once (1 to 2000)")
    parser.add_argument("--addresses", type=int, default=20, help="loopback source addresses they come from")
    parser.add_argument("--samples", type=int, default=200, help="requests at rest")
    parser.add_argument("--tmp", default=None, help="directory for the data dir (e.g. /dev/shm)")
    args = parser.parse_args()
    if any(mode not in MODES for mode in args.modes.split(",")):
        parser.error(f"--modes: from {', '.join(MODES)}")
    if not 1 <= args.burst <= 2000:
        parser.error("--burst: 1 to 2000")
    if not 1 <= args.addresses <= 250 or args.burst / args.addresses > 20:
        parser.error("--addresses: 1 to 250, and at most 20 sign-ins each (the per-address limit)")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
