"""Patients waiting on WebSockets against one real `porchlight serve` process.

For each count N (default 1,000 then 5,000), a fresh server is started on its embedded Redis
in a temporary data dir. Everything is set up the way clients do it: staff accounts with
`porchlight user add`, then over HTTP a sign-in, one group (capacity 500), N patients and
their enrolments, and an open session. N patient WebSockets say `hello` and wait. Measured:

- the server process's RSS (VmRSS of the Python process, not its redis-server child) before
  the sockets connect and once all N wait; per connection = the difference / N;
- the time until all N have received `waiting` (and each hello -> waiting latency);
- admit latency: `--admits` patients are admitted one at a time (POST .../admit with one
  patient id); latency = from sending the POST to that patient's socket receiving
  `admitted`. The HTTP round trip alone is reported too.

Figures are printed, not asserted: timings depend on the machine and on what else runs on it
(the clients run in this process, on the same cores as the server).

    python -m bench.waiting_room [--counts 1000,5000] [--admits 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

COOKIE_NAME = "porchlight_session"
PASSWORD = "bench-password-not-secret"
GROUP_CAPACITY = 500  # the most a group may have; admissions beyond it get 409 capacity_reached
START_TIMEOUT = 60.0
FRAME_TIMEOUT = 60.0  # hello -> waiting, under load
ADMIT_TIMEOUT = 10.0
_TYPE = re.compile(r'"type"\s*:\s*"([a-z_]+)"')


# -- small helpers ---------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def proc_kb(pid: int, field_name: str) -> int:
    """A kB figure (VmRSS, VmHWM, ...) from /proc/<pid>/status; -1 if unavailable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def child_pids(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    return out


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def raise_fd_limit() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def porchlight_command() -> list[str]:
    script = Path(sys.executable).parent / "porchlight"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "server"]


def mb(kb: float) -> float:
    return kb / 1024


# -- the server process ----------------------------------------------------------------------


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    url: str
    data_dir: Path
    env: dict[str, str]
    log_path: Path
    stdout_lines: list[str] = field(default_factory=list)
    drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kb(self) -> int:
        return proc_kb(self.pid, "VmRSS")

    def redis_rss_kb(self) -> int:
        return sum(max(0, proc_kb(c, "VmRSS")) for c in child_pids(self.pid))

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def log_problems(self) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in text if " WARNING " in line or " ERROR " in line or "Traceback" in line]


def server_env(data_dir: Path, heartbeat: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORCHLIGHT_")}
    env.update({
        "PORCHLIGHT_HOST": "127.0.0.1",
        "PORCHLIGHT_PORT": "0",
        "PORCHLIGHT_DATA_DIR": str(data_dir),
        "PORCHLIGHT_LOG_LEVEL": "WARNING",
        "PORCHLIGHT_HEARTBEAT_INTERVAL_SECONDS": f"{heartbeat:g}",
    })
    return env


async def start_server(data_dir: Path, heartbeat: float) -> Server:
    env = server_env(data_dir, heartbeat)
    log_path = data_dir.parent / "server.log"
    with open(log_path, "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *porchlight_command(), "serve", env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=log,
        )
    assert proc.stdout is not None
    lines: list[str] = []
    url = None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while url is None:
                raw = await proc.stdout.readline()
                if not raw:
                    break
                line = raw.decode(errors="replace").rstrip()
                lines.append(line)
                if m := re.search(r"Porchlight is running at (https?://\S+)", line):
                    url = m.group(1)
    except TimeoutError:
        pass
    if url is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        detail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
        raise RuntimeError(f"the server did not start (exit {proc.returncode}); stdout: {lines!r}; log:\n{detail}")
    server = Server(proc, url, data_dir, env, log_path, lines)

    async def drain() -> None:
        assert proc.stdout is not None
        while raw := await proc.stdout.readline():
            lines.append(raw.decode(errors="replace").rstrip())

    server.drain = asyncio.create_task(drain())
    return server


async def stop_server(server: Server, timeout: float = 60.0) -> tuple[int | None, float]:
    """SIGTERM, then wait (the server stops its embedded Redis). Returns (exit code, seconds)."""
    t0 = time.perf_counter()
    if server.proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            server.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(server.proc.wait(), timeout)
        except TimeoutError:
            print(f"  ! server did not exit {timeout:.0f} s after SIGTERM; killing it", flush=True)
            with contextlib.suppress(ProcessLookupError):
                server.proc.kill()
            await server.proc.wait()
    if server.drain is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.drain, 5)
    return server.proc.returncode, time.perf_counter() - t0


async def add_user(server: Server, username: str, role: str, name: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *porchlight_command(), "user", "add", username, "--role", role, "--name", name, env=server.env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate((PASSWORD + "\n").encode()), 60)
    if proc.returncode != 0:
        raise RuntimeError(f"porchlight user add {username} failed ({proc.returncode}): "
                           f"{out.decode(errors='replace')} {err.decode(errors='replace')}")


# -- HTTP as staff ---------------------------------------------------------------------------


@dataclass
class Staff:
    user_id: str
    cookie: str
    csrf: str

    def headers(self) -> dict[str, str]:
        return {"Cookie": f"{COOKIE_NAME}={self.cookie}", "X-CSRF-Token": self.csrf}


class ApiError(Exception):
    pass


async def login(http: aiohttp.ClientSession, base: str, username: str) -> Staff:
    async with http.post(f"{base}/api/v1/login", json={"username": username, "password": PASSWORD}) as resp:
        text = await resp.text()
        if resp.status != 200:
            raise ApiError(f"login {username}: {resp.status} {text[:300]}")
        body = json.loads(text)
        cookie = resp.cookies[COOKIE_NAME].value
    return Staff(body["user"]["id"], cookie, body["csrf_token"])


async def post(http: aiohttp.ClientSession, base: str, staff: Staff, path: str, body: Any,
               expect: int = 200) -> Any:
    async with http.post(f"{base}/api/v1{path}", json=body, headers=staff.headers()) as resp:
        text = await resp.text()
        if resp.status != expect:
            raise ApiError(f"POST {path}: {resp.status} {text[:300]}")
    return json.loads(text)


async def server_metrics(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    out: dict[str, float] = {}
    with contextlib.suppress(Exception):
        async with http.get(f"{base}/metrics") as resp:
            for line in (await resp.text()).splitlines():
                if line and not line.startswith("#"):
                    name, _, value = line.rpartition(" ")
                    with contextlib.suppress(ValueError):
                        out[name] = float(value)
    return out


# -- patients on WebSockets ------------------------------------------------------------------


class Patient:
    __slots__ = ("id", "token", "ws", "reader", "hello_s", "error", "waiter", "admitted_at",
                 "close_code", "frames", "kinds")

    def __init__(self, patient_id: str, token: str) -> None:
        self.id = patient_id
        self.token = token
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.hello_s = math.nan
        self.error: str | None = None
        self.waiter: asyncio.Future[float] | None = None
        self.admitted_at: float | None = None
        self.close_code: int | None = None
        self.frames = 0
        self.kinds: dict[str, int] | None = None  # frame types other than waiting/admitted/roster


async def connect_patient(http: aiohttp.ClientSession, ws_url: str, p: Patient, session_id: str,
                          gate: asyncio.Semaphore) -> None:
    async with gate:
        t0 = time.perf_counter()
        try:
            ws = await http.ws_connect(ws_url, autoping=True, autoclose=True, max_msg_size=0)
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            p.error = f"connect: {type(exc).__name__}: {exc}"
            return
        try:
            await ws.send_str(json.dumps({"type": "hello", "token": p.token, "location": "home"}))
            while True:
                msg = await ws.receive(timeout=FRAME_TIMEOUT)
                if msg.type is aiohttp.WSMsgType.TEXT:
                    break
                if msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                    continue
                p.error = f"hello: got {msg.type.name} (close code {ws.close_code}) instead of a frame"
                await ws.close()
                return
            frame = json.loads(msg.data)
        except Exception as exc:  # noqa: BLE001
            p.error = f"hello: {type(exc).__name__}: {exc}"
            await ws.close()
            return
        if frame.get("type") != "waiting" or frame.get("session_id") != session_id:
            p.error = f"hello: expected waiting in {session_id}, got {json.dumps(frame)[:200]}"
            await ws.close()
            return
        p.hello_s = time.perf_counter() - t0
        p.ws = ws
        p.reader = asyncio.create_task(read_patient(p, ws))


async def read_patient(p: Patient, ws: aiohttp.ClientWebSocketResponse) -> None:
    """Keep reading (so the server's pings are answered) and note when `admitted` arrives."""
    try:
        async for msg in ws:  # autoping answers PINGs inside receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            p.frames += 1
            m = _TYPE.search(msg.data, 0, 64)
            kind = m.group(1) if m else "?"
            if kind == "admitted":
                p.admitted_at = now
                if p.waiter is not None and not p.waiter.done():
                    p.waiter.set_result(now)
            elif kind not in ("waiting", "roster"):
                if p.kinds is None:
                    p.kinds = {}
                p.kinds[kind] = p.kinds.get(kind, 0) + 1
    except Exception as exc:  # noqa: BLE001
        p.error = f"read: {type(exc).__name__}: {exc}"
    finally:
        p.close_code = ws.close_code if ws.close_code is not None else -1


# -- one run ---------------------------------------------------------------------------------


@dataclass
class Result:
    count: int
    connected: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    setup_s: float = 0.0
    rss_start_kb: int = 0
    rss_before_kb: int = 0
    rss_waiting_kb: int = 0
    rss_after_admits_kb: int = 0
    hwm_kb: int = 0
    redis_rss_kb: int = 0
    client_rss_kb: int = 0
    server_fds: int = 0
    connect_s: float = math.nan
    hello_ms: list[float] = field(default_factory=list)
    admit_ms: list[float] = field(default_factory=list)
    http_ms: list[float] = field(default_factory=list)
    admitted_before_response: int = 0
    admit_errors: list[str] = field(default_factory=list)
    admit_missing: int = 0
    dropped_while_waiting: int = 0
    metrics_waiting: float = math.nan
    metrics_ws: float = math.nan
    stop_code: int | None = None
    stop_s: float = 0.0
    log_problems: list[str] = field(default_factory=list)

    @property
    def kb_per_conn(self) -> float:
        return (self.rss_waiting_kb - self.rss_before_kb) / self.connected if self.connected else math.nan


async def create_patients(http: aiohttp.ClientSession, base: str, admin: Staff, group_id: str, n: int,
                          concurrency: int) -> list[Patient]:
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def one(i: int) -> Patient:
        nonlocal done
        async with gate:
            patient = await post(http, base, admin, "/patients", {"display_name": f"Bench Patient {i}"}, 201)
            enrollment = await post(http, base, admin, f"/groups/{group_id}/enrollments",
                                    {"patient_id": patient["id"]}, 201)
        done += 1
        if done % 1000 == 0:
            print(f"    {done} patients enrolled", flush=True)
        return Patient(patient["id"], enrollment["join_url"].rsplit("/j/", 1)[1])

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def run_one(n: int, args: argparse.Namespace) -> Result:
    result = Result(n)
    tmp = Path(tempfile.mkdtemp(prefix="plbench-"))
    server: Server | None = None
    patients: list[Patient] = []
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    http = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    try:
        print(f"\n== {n} patients waiting ==", flush=True)
        server = await start_server(tmp / "data", args.heartbeat)
        base = server.url
        print(f"  server pid {server.pid} at {base} (data {server.data_dir})", flush=True)
        await asyncio.sleep(1.0)
        result.rss_start_kb = server.rss_kb()

        t0 = time.perf_counter()
        await add_user(server, "bench_admin", "admin", "Bench Admin")
        await add_user(server, "bench_fac", "facilitator", "Bench Facilitator")
        admin = await login(http, base, "bench_admin")
        fac = await login(http, base, "bench_fac")
        group = await post(http, base, admin, "/groups", {
            "name": "Bench IOP", "program": "IOP", "facilitator_ids": [fac.user_id], "capacity": GROUP_CAPACITY,
        }, 201)
        patients = await create_patients(http, base, admin, group["id"], n, args.setup_concurrency)
        session = await post(http, base, fac, f"/groups/{group['id']}/sessions", {}, 201)
        session_id = session["id"]
        result.setup_s = time.perf_counter() - t0
        print(f"  setup: 2 staff, 1 group, {n} patients + enrolments, session open in {result.setup_s:.1f} s",
              flush=True)

        await asyncio.sleep(args.settle)
        result.rss_before_kb = server.rss_kb()

        # Connect everyone, at most --connect-concurrency handshakes in flight.
        ws_url = base.replace("http", "ws", 1) + "/api/v1/ws"
        gate = asyncio.Semaphore(args.connect_concurrency)
        t0 = time.perf_counter()
        await asyncio.gather(*(connect_patient(http, ws_url, p, session_id, gate) for p in patients))
        result.connect_s = time.perf_counter() - t0
        waiting = [p for p in patients if p.ws is not None]
        result.connected = len(waiting)
        for p in patients:
            if p.error is not None:
                key = p.error[:160]
                result.failed[key] = result.failed.get(key, 0) + 1
        result.hello_ms = [p.hello_s * 1000 for p in waiting]
        print(f"  {result.connected}/{n} waiting after {result.connect_s:.2f} s", flush=True)
        for what, count in result.failed.items():
            print(f"  ! {count} x {what}", flush=True)

        await asyncio.sleep(args.settle)
        result.rss_waiting_kb = server.rss_kb()
        result.redis_rss_kb = server.redis_rss_kb()
        result.server_fds = open_fds(server.pid)
        metrics = await server_metrics(http, base)
        result.metrics_waiting = metrics.get("porchlight_patients_waiting", math.nan)
        result.metrics_ws = metrics.get("porchlight_ws_connections", math.nan)

        # Admit a sample, one at a time, while everyone else keeps waiting.
        sample = random.Random(n).sample(waiting, min(args.admits, len(waiting)))
        url = f"{base}/api/v1/sessions/{session_id}/admit"
        loop = asyncio.get_running_loop()
        for p in sample:
            if p.ws is None or p.ws.closed:
                result.admit_errors.append(f"{p.id}: socket closed before admission (code {p.close_code})")
                continue
            p.waiter = loop.create_future()
            t0 = time.perf_counter()
            async with http.post(url, json={"patient_ids": [p.id]}, headers=fac.headers()) as resp:
                body = await resp.read()
                status = resp.status
            t1 = time.perf_counter()
            if status != 200:
                result.admit_errors.append(f"{status} {body[:200].decode(errors='replace')}")
                if len(result.admit_errors) >= 10:
                    print("  ! 10 admission errors; stopping admissions", flush=True)
                    break
                continue
            try:
                t2 = await asyncio.wait_for(p.waiter, ADMIT_TIMEOUT)
            except TimeoutError:
                result.admit_missing += 1
                continue
            result.http_ms.append((t1 - t0) * 1000)
            result.admit_ms.append((t2 - t0) * 1000)
            if t2 < t1:
                result.admitted_before_response += 1
            if args.admit_gap > 0:
                await asyncio.sleep(args.admit_gap / 1000)
        result.rss_after_admits_kb = server.rss_kb()
        result.hwm_kb = proc_kb(server.pid, "VmHWM")
        result.client_rss_kb = proc_kb(os.getpid(), "VmRSS")
        admitted = {p.id for p in sample}
        result.dropped_while_waiting = sum(
            1 for p in waiting if p.id not in admitted and (p.ws is None or p.ws.closed or p.close_code is not None)
        )
        odd: dict[str, int] = {}
        for p in waiting:
            for kind, count in (p.kinds or {}).items():
                odd[kind] = odd.get(kind, 0) + count
        if odd:
            print(f"  other frames patients received: {odd}", flush=True)
        print(f"  admitted {len(result.admit_ms)}/{len(sample)}; "
              f"admit p50 {percentile(result.admit_ms, 50):.1f} ms, p99 {percentile(result.admit_ms, 99):.1f} ms",
              flush=True)
        for err in result.admit_errors[:10]:
            print(f"  ! admit: {err}", flush=True)
    finally:
        # Clients leave first (each leave is committed by the server), then SIGTERM.
        t0 = time.perf_counter()
        gate = asyncio.Semaphore(200)

        async def close(p: Patient) -> None:
            async with gate:
                if p.ws is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(p.ws.close(), 10)
                if p.reader is not None:
                    p.reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await p.reader

        await asyncio.gather(*(close(p) for p in patients))
        await http.close()
        close_s = time.perf_counter() - t0
        if server is not None:
            result.stop_code, result.stop_s = await stop_server(server)
            result.log_problems = server.log_problems()
            print(f"  teardown: sockets closed in {close_s:.1f} s; server exited {result.stop_code} "
                  f"{result.stop_s:.1f} s after SIGTERM", flush=True)
            if result.log_problems:
                print(f"  ! server log: {len(result.log_problems)} warning/error lines, first ones:", flush=True)
                for line in result.log_problems[:8]:
                    print(f"      {line[:300]}", flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return result


# -- report ----------------------------------------------------------------------------------


def report(results: list[Result], args: argparse.Namespace) -> None:
    print("\n== waiting room: memory and admit latency ==")
    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    print(f"python {platform.python_version()} ({platform.python_implementation()}), aiohttp {aiohttp.__version__}, "
          f"{platform.system()} {platform.machine()}, cpu_count {cpus} (usable {usable}); "
          f"heartbeat {args.heartbeat:g} s; {args.admits} admits one at a time; clients in the same machine")
    head = (f"{'waiting':>8} {'server RSS MB':>14} {'KB/conn':>8} {'connect all s':>14} {'hello p99 ms':>13} "
            f"{'admit p50 ms':>13} {'admit p99 ms':>13} {'admit max ms':>13} {'http p50 ms':>12} {'http p99 ms':>12}")
    print(head)
    for r in results:
        print(f"{r.connected:>8} {mb(r.rss_waiting_kb):>14.1f} {r.kb_per_conn:>8.1f} {r.connect_s:>14.2f} "
              f"{percentile(r.hello_ms, 99):>13.1f} "
              f"{percentile(r.admit_ms, 50):>13.1f} {percentile(r.admit_ms, 99):>13.1f} "
              f"{max(r.admit_ms, default=math.nan):>13.1f} "
              f"{percentile(r.http_ms, 50):>12.1f} {percentile(r.http_ms, 99):>12.1f}")
    print()
    for r in results:
        quarter = max(1, len(r.admit_ms) // 4)
        print(f"{r.count:>6}: RSS start {mb(r.rss_start_kb):.1f} MB, before sockets {mb(r.rss_before_kb):.1f} MB, "
              f"waiting {mb(r.rss_waiting_kb):.1f} MB, after admits {mb(r.rss_after_admits_kb):.1f} MB, "
              f"peak {mb(r.hwm_kb):.1f} MB; redis-server {mb(r.redis_rss_kb):.1f} MB; server fds {r.server_fds}; "
              f"bench client {mb(r.client_rss_kb):.1f} MB")
        print(f"        setup {r.setup_s:.1f} s; connect rate {r.connected / r.connect_s:.0f}/s, "
              f"hello->waiting p50 {percentile(r.hello_ms, 50):.1f} ms; "
              f"/metrics waiting {r.metrics_waiting:g}, ws {r.metrics_ws:g}; "
              f"admit p50 first {quarter} {percentile(r.admit_ms[:quarter], 50):.1f} ms, "
              f"last {quarter} {percentile(r.admit_ms[-quarter:], 50):.1f} ms; "
              f"'admitted' before the HTTP answer {r.admitted_before_response}/{len(r.admit_ms)}")
        problems = []
        if r.connected < r.count:
            problems.append(f"{r.count - r.connected} sockets failed")
        if r.admit_errors:
            problems.append(f"{len(r.admit_errors)} admission errors")
        if r.admit_missing:
            problems.append(f"{r.admit_missing} 'admitted' frames not received")
        if r.dropped_while_waiting:
            problems.append(f"{r.dropped_while_waiting} waiting sockets closed by the server")
        if r.log_problems:
            problems.append(f"{len(r.log_problems)} warning/error lines in the server log")
        if r.stop_code not in (0, None):
            problems.append(f"server exit code {r.stop_code}")
        print(f"        problems: {'; '.join(problems) if problems else 'none'}")
    first = results[0]
    for r in results[1:]:
        def ratio(a: float, b: float) -> str:
            return f"{a / b:.2f}" if b and not math.isnan(a) and not math.isnan(b) else "n/a"

        print(f"ratio {r.count}/{first.count}: KB/conn {ratio(r.kb_per_conn, first.kb_per_conn)}, "
              f"admit p50 {ratio(percentile(r.admit_ms, 50), percentile(first.admit_ms, 50))}, "
              f"admit p99 {ratio(percentile(r.admit_ms, 99), percentile(first.admit_ms, 99))}, "
              f"connect all {ratio(r.connect_s, first.connect_s)} "
              f"(x{r.count / first.count:g} patients)")
    print("targets (issue, not asserted): 5,000 waiting under 500 MB RSS; admit p99 under 50 ms")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.waiting_room", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1000,5000", help="patients waiting, one fresh server each")
    parser.add_argument("--admits", type=int, default=200,
                        help=f"patients admitted one at a time (under the group capacity, {GROUP_CAPACITY})")
    parser.add_argument("--admit-gap", type=float, default=0.0, help="ms to pause between admissions")
    parser.add_argument("--heartbeat", type=float, default=10.0, help="PORCHLIGHT_HEARTBEAT_INTERVAL_SECONDS")
    parser.add_argument("--connect-concurrency", type=int, default=100, help="WebSocket handshakes in flight")
    parser.add_argument("--setup-concurrency", type=int, default=50, help="HTTP requests in flight during setup")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait before reading RSS")
    args = parser.parse_args(argv)
    args.counts = [int(c) for c in str(args.counts).split(",") if c.strip()]
    if not args.counts or min(args.counts) < 1:
        parser.error("--counts: positive whole numbers, comma-separated")
    if not 1 <= args.admits <= GROUP_CAPACITY:
        parser.error(f"--admits must be between 1 and the group capacity ({GROUP_CAPACITY})")
    return args


async def amain(args: argparse.Namespace) -> int:
    results = []
    for n in args.counts:
        results.append(await run_one(n, args))
    report(results, args)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    soft, hard = raise_fd_limit()
    need = max(args.counts) + 200
    if soft != resource.RLIM_INFINITY and soft < need:
        print(f"warning: RLIMIT_NOFILE is {soft} (hard {hard}); {max(args.counts)} sockets need about {need}",
              file=sys.stderr)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    raise SystemExit(main())
