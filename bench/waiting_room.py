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
  `admitted`. The HTTP round trip alone is reported too. Meanwhile the facilitator's page
  holds a WebSocket in the session, as in a clinic, and gets the waiting list (everyone still
  waiting) and the roster after every change (`--no-facilitator-socket`: admissions over HTTP
  only, as before 2026-12-01's second session).

Figures are printed, not asserted: timings depend on the machine and on what else runs on it
(the clients run in this process, on the same cores as the server).

    python -m bench.waiting_room [--counts 1000,5000] [--admits 200] [--group-size 15] [--bare]

With --group-size S the N patients wait in groups of S (each with its session open and, by
default, its facilitator's socket), as in a clinic's evening of many groups; without it, in
one group.

With --bare, a bare aiohttp server (bench/bare_ws.py) then holds the same number of sockets
(each answered once with a `waiting`-sized frame) and its RSS is printed beside the server's,
with their ratio (issue 15's goal: ≤ 2×).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from bench.sides import before_path, side_env
from bench.sides import ratio as side_ratio
from server.store.embedded import socket_path_for

COOKIE_NAME = "porchlight_session"
PASSWORD = "bench-password-not-secret"
GROUP_CAPACITY = 500  # the most a group may have; admissions beyond it get 409 capacity_reached
START_TIMEOUT = 60.0
FRAME_TIMEOUT = 60.0  # hello -> waiting, under load
ADMIT_TIMEOUT = 10.0
_TYPE = re.compile(r'"type"\s*:\s*"([a-z_]+)"')
# When the bench received each server ping (perf_counter), to line up slow admits with ping waves.
PINGS: list[float] = []


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


# --server-gc-log: the same `porchlight serve`, with a gc callback that writes every collection
# pause of 5 ms or more to stderr (the server log) stamped with time.perf_counter(), which on
# Linux is CLOCK_MONOTONIC and so comparable with the bench's own timestamps.
GC_LOGGING_SERVER = """
import gc, sys, time
_start = [0.0]
def _pause(phase, info):
    if phase == "start":
        _start[0] = time.perf_counter()
        return
    took = time.perf_counter() - _start[0]
    if took >= 0.005:
        print(f"GCPAUSE {_start[0]:.6f} {took:.6f} gen{info['generation']} collected={info['collected']}",
              file=sys.stderr, flush=True)
gc.callbacks.append(_pause)
from server.cli import main
sys.argv[0] = "porchlight"
raise SystemExit(main(sys.argv[1:]))
"""


def server_command(gc_log: bool) -> list[str]:
    return [sys.executable, "-c", GC_LOGGING_SERVER] if gc_log else porchlight_command()


def pings_between(pings: list[float], start: float, end: float) -> int:
    return bisect.bisect_right(pings, end) - bisect.bisect_left(pings, start)


def worst_lag(lags: list[tuple[float, float]], start: float, end: float) -> float:
    return max((late for when, late in lags if start <= when <= end + late), default=0.0)


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

    def redis_log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join((self.data_dir / "redis.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def gc_pauses(self) -> list[tuple[float, float, str]]:
        """(start, seconds, generation) of the server's collections >= 5 ms (with --server-gc-log)."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        out = []
        for line in text:
            if line.startswith("GCPAUSE "):
                _, start, took, gen, _ = line.split(" ", 4)
                out.append((float(start), float(took), gen))
        return out


def server_env(data_dir: Path, heartbeat: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORCHLIGHT_")}
    env.update({
        "PORCHLIGHT_HOST": "127.0.0.1",
        "PORCHLIGHT_PORT": "0",
        "PORCHLIGHT_DATA_DIR": str(data_dir),
        "PORCHLIGHT_LOG_LEVEL": "WARNING",
        "PORCHLIGHT_HEARTBEAT_INTERVAL_SECONDS": f"{heartbeat:g}",
        # Every simulated patient connects from 127.0.0.1: lift the per-address cap on sockets
        # before hello (the total cap still holds; handshakes in flight stay under it).
        "PORCHLIGHT_WS_BEFORE_HELLO_PER_ADDRESS": "1000000",
    })
    return env


async def start_server(data_dir: Path, heartbeat: float, gc_log: bool = False,
                       command: list[str] | None = None, extra_env: dict[str, str] | None = None) -> Server:
    # The server is this checkout's (as the bench's clients are) unless extra_env says otherwise,
    # not whichever checkout the interpreter's `porchlight` script was installed from.
    env = {**server_env(data_dir, heartbeat), "PYTHONPATH": side_env(None)["PYTHONPATH"], **(extra_env or {})}
    log_path = data_dir.parent / "server.log"
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        proc = await asyncio.create_subprocess_exec(
            *(command or server_command(gc_log)), "serve", env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=log_fd,
        )
    finally:
        os.close(log_fd)
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


async def stop_server(server: Server, wait_s: float = 60.0) -> tuple[int | None, float]:
    """SIGTERM, then wait (the server stops its embedded Redis). Returns (exit code, seconds)."""
    t0 = time.perf_counter()
    if server.proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            server.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(server.proc.wait(), wait_s)
        except TimeoutError:
            print(f"  ! server did not exit {wait_s:.0f} s after SIGTERM; killing it", flush=True)
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


async def timed(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, float]:
    """An HTTP request's status (0 when no answer came) and its time in ms."""
    t0 = time.perf_counter()
    try:
        async with http.request(method, url, **kw) as resp:
            await resp.read()
            status = resp.status
    except aiohttp.ClientError:
        status = 0  # no HTTP answer at all
    return status, (time.perf_counter() - t0) * 1000


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
    __slots__ = ("id", "token", "group", "session_id", "ws", "reader", "hello_s", "error", "waiter", "admitted_at",
                 "close_code", "frames", "kinds")

    def __init__(self, patient_id: str, token: str, group: int) -> None:
        self.id = patient_id
        self.token = token
        self.group = group  # index of the patient's group
        self.session_id = ""
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
                          gate: asyncio.Semaphore, compress: int = 15) -> None:
    """`compress`: the permessage-deflate window bits the socket offers (15, as browsers do; 0: none)."""
    async with gate:
        t0 = time.perf_counter()
        try:
            # autoping=False: pings are answered by hand below, so their arrival can be recorded.
            ws = await http.ws_connect(ws_url, autoping=False, autoclose=True, max_msg_size=0,
                                       compress=compress)
        except Exception as exc:
            p.error = f"connect: {type(exc).__name__}: {exc}"
            return
        try:
            await ws.send_str(json.dumps({"type": "hello", "token": p.token, "location": "home"}))
            while True:
                msg = await ws.receive(timeout=FRAME_TIMEOUT)
                if msg.type is aiohttp.WSMsgType.TEXT:
                    break
                if msg.type is aiohttp.WSMsgType.PING:
                    PINGS.append(time.perf_counter())
                    await ws.pong(msg.data)
                    continue
                if msg.type is aiohttp.WSMsgType.PONG:
                    continue
                p.error = f"hello: got {msg.type.name} (close code {ws.close_code}) instead of a frame"
                await ws.close()
                return
            frame = json.loads(msg.data)
        except Exception as exc:
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
        async for msg in ws:
            now = time.perf_counter()
            if msg.type is aiohttp.WSMsgType.PING:
                PINGS.append(now)
                await ws.pong(msg.data)
                continue
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
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
    except Exception as exc:
        p.error = f"read: {type(exc).__name__}: {exc}"
    finally:
        p.close_code = ws.close_code if ws.close_code is not None else -1


async def facilitator_socket(http: aiohttp.ClientSession, ws_url: str, fac: Staff, session_id: str,
                             frames: dict[str, int]) -> asyncio.Task[None]:
    """The facilitator's page in the session: its socket gets the waiting list (all N waiting)
    and the roster after every change, as a real facilitator's does."""
    ws = await http.ws_connect(ws_url, headers={"Cookie": f"{COOKIE_NAME}={fac.cookie}"}, max_msg_size=0)
    await ws.send_str(json.dumps({"type": "hello", "session_id": session_id}))

    async def read() -> None:
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    m = _TYPE.search(msg.data, 0, 64)
                    kind = m.group(1) if m else "?"
                    frames[kind] = frames.get(kind, 0) + 1
        finally:
            await ws.close()

    reader = asyncio.create_task(read())
    while not frames.get("waiting_list") and not reader.done():
        await asyncio.sleep(0.05)
    if reader.done():
        raise RuntimeError(f"the facilitator's socket closed after {frames}")
    return reader


async def probe_loop_lag(out: list[tuple[float, float]], every: float = 0.005) -> None:
    """Note when this process's event loop wakes a 5 ms sleep more than 20 ms late."""
    while True:
        t = time.perf_counter()
        await asyncio.sleep(every)
        late = time.perf_counter() - t - every
        if late > 0.02:
            out.append((time.perf_counter(), late))


class RedisLatency:
    """Redis's own latency monitor on the server's embedded Redis (read-only diagnostics):
    which Redis-side stalls (e.g. `aof-fsync-always`) of 5 ms or more happened while admitting."""

    THRESHOLD_MS = 5

    def __init__(self, data_dir: Path) -> None:
        self.client = aioredis.Redis(unix_socket_path=str(socket_path_for(data_dir)), decode_responses=True)

    async def start(self) -> None:
        await self.client.config_set("latency-monitor-threshold", self.THRESHOLD_MS)
        await self.client.execute_command("LATENCY", "RESET")

    async def between(self, start: float, end: float) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for row in await self.client.execute_command("LATENCY", "LATEST"):
            name = str(row[0])
            history = await self.client.execute_command("LATENCY", "HISTORY", name)
            hits = [int(ms) for ts, ms in history if math.floor(start) <= int(ts) <= math.ceil(end)]
            if hits:
                out[name] = (len(hits), max(hits))
        return out

    async def clients(self) -> dict[str, int]:
        info = {**await self.client.info("clients"), **await self.client.info("stats")}
        return {k: int(info[k]) for k in ("connected_clients", "rejected_connections", "total_connections_received")
                if k in info}

    async def close(self) -> None:
        await self.client.config_set("latency-monitor-threshold", 0)
        await self.client.aclose()


# -- one run ---------------------------------------------------------------------------------


@dataclass
class Result:
    count: int
    side: str = ""  # with --before: "before" or "after"
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
    admit_windows: list[tuple[float, float]] = field(default_factory=list)  # (sent, admitted) perf_counter
    pings: list[float] = field(default_factory=list)
    client_lags: list[tuple[float, float]] = field(default_factory=list)  # (when, seconds late) over 20 ms
    redis_slow: dict[str, tuple[int, int]] = field(default_factory=dict)  # event -> (times >= 5 ms, max ms)
    gc_log: bool = False
    redis_clients: dict[str, int] = field(default_factory=dict)
    gc_pauses: list[tuple[float, float, str]] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    staff_frames: dict[str, int] = field(default_factory=dict)  # frames the facilitator's socket got, by type

    @property
    def kb_per_conn(self) -> float:
        return (self.rss_waiting_kb - self.rss_before_kb) / self.connected if self.connected else math.nan


async def create_patients(http: aiohttp.ClientSession, base: str, admin: Staff, group_ids: list[str], n: int,
                          concurrency: int) -> list[Patient]:
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def one(i: int) -> Patient:
        nonlocal done
        group = i % len(group_ids)
        async with gate:
            patient = await post(http, base, admin, "/patients", {"display_name": f"Bench Patient {i}"}, 201)
            enrollment = await post(http, base, admin, f"/groups/{group_ids[group]}/enrollments",
                                    {"patient_id": patient["id"]}, 201)
        done += 1
        if done % 1000 == 0:
            print(f"    {done} patients enrolled", flush=True)
        return Patient(patient["id"], enrollment["join_url"].rsplit("/j/", 1)[1], group)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def run_one(n: int, args: argparse.Namespace, side: str = "", pythonpath: str | None = None) -> Result:
    result = Result(n, side)
    tmp = Path(tempfile.mkdtemp(prefix="plbench-", dir=args.tmp))
    PINGS.clear()
    server: Server | None = None
    latency: RedisLatency | None = None
    lag_probe: asyncio.Task[None] | None = None
    patients: list[Patient] = []
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    http = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    try:
        print(f"\n== {n} patients waiting ==", flush=True)
        server = await start_server(tmp / "data", args.heartbeat, args.server_gc_log,
                                    extra_env={"PYTHONPATH": side_env(pythonpath)["PYTHONPATH"]} if side else None)
        base = server.url
        print(f"  server pid {server.pid} at {base} (data {server.data_dir})", flush=True)
        await asyncio.sleep(1.0)
        result.rss_start_kb = server.rss_kb()

        t0 = time.perf_counter()
        await add_user(server, "bench_admin", "admin", "Bench Admin")
        await add_user(server, "bench_fac", "facilitator", "Bench Facilitator")
        admin = await login(http, base, "bench_admin")
        fac = await login(http, base, "bench_fac")
        groups = math.ceil(n / args.group_size) if args.group_size else 1
        group_ids = [(await post(http, base, admin, "/groups", {
            "name": f"Bench IOP {g + 1}", "program": "IOP", "facilitator_ids": [fac.user_id],
            "capacity": GROUP_CAPACITY,
        }, 201))["id"] for g in range(groups)]
        patients = await create_patients(http, base, admin, group_ids, n, args.setup_concurrency)
        session_ids = [(await post(http, base, fac, f"/groups/{gid}/sessions", {}, 201))["id"] for gid in group_ids]
        for p in patients:
            p.session_id = session_ids[p.group]
        result.setup_s = time.perf_counter() - t0
        print(f"  setup: 2 staff, {groups} group(s), {n} patients + enrolments, session(s) open in "
              f"{result.setup_s:.1f} s", flush=True)

        await asyncio.sleep(args.settle)
        result.rss_before_kb = server.rss_kb()

        # Connect everyone, at most --connect-concurrency handshakes in flight.
        ws_url = base.replace("http", "ws", 1) + "/api/v1/ws"
        gate = asyncio.Semaphore(args.connect_concurrency)
        t0 = time.perf_counter()
        await asyncio.gather(*(connect_patient(http, ws_url, p, p.session_id, gate, args.compress) for p in patients))
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

        staff_readers: list[asyncio.Task[None]] = []
        if args.facilitator_socket:  # one per session, as each group has its facilitator
            for sid in session_ids:
                staff_readers.append(await facilitator_socket(http, ws_url, fac, sid, result.staff_frames))
        await asyncio.sleep(args.settle)
        result.rss_waiting_kb = server.rss_kb()
        result.redis_rss_kb = server.redis_rss_kb()
        result.server_fds = open_fds(server.pid)
        metrics = await server_metrics(http, base)
        result.metrics_waiting = metrics.get("porchlight_patients_waiting", math.nan)
        result.metrics_ws = metrics.get("porchlight_ws_connections", math.nan)
        latency = RedisLatency(server.data_dir)
        result.redis_clients = await latency.clients()
        if result.failed:
            print(f"  redis after connecting: {result.redis_clients}", flush=True)
            tail = server.redis_log_tail()
            if tail:
                print("  redis.log (tail):\n" + "\n".join("      " + line for line in tail.splitlines()), flush=True)

        # The bench's own objects stay put from here: keep its garbage collector from pausing the
        # clients (and so inflating latencies) by scanning thousands of sockets.
        gc.collect()
        gc.freeze()
        lag_probe = asyncio.create_task(probe_loop_lag(result.client_lags))

        # Let the server's heartbeat reach every socket at least once, so that admissions happen
        # in the steady state of a waiting room (pings flowing), not right after the connect burst.
        hold = args.heartbeat + 1 if args.hold is None else args.hold
        if hold > 0:
            print(f"  holding {hold:g} s before admitting (heartbeat {args.heartbeat:g} s)", flush=True)
            await asyncio.sleep(hold)
        await latency.start()
        wall_start = time.time()

        # Admit a sample, one at a time, while everyone else keeps waiting.
        sample = random.Random(n).sample(waiting, min(args.admits, len(waiting)))
        loop = asyncio.get_running_loop()
        for p in sample:
            if p.ws is None or p.ws.closed:
                result.admit_errors.append(f"{p.id}: socket closed before admission (code {p.close_code})")
                continue
            p.waiter = loop.create_future()
            t0 = time.perf_counter()
            url = f"{base}/api/v1/sessions/{p.session_id}/admit"
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
            result.admit_windows.append((t0, t2))
            if t2 < t1:
                result.admitted_before_response += 1
            if args.admit_gap > 0:
                await asyncio.sleep(args.admit_gap / 1000)
        result.redis_slow = await latency.between(wall_start, time.time())
        result.pings = sorted(PINGS)
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
        if staff_readers:
            print(f"  the facilitators' sockets ({len(staff_readers)}) received: {result.staff_frames}", flush=True)
            for reader in staff_readers:
                reader.cancel()
        print(f"  admitted {len(result.admit_ms)}/{len(sample)}; "
              f"admit p50 {percentile(result.admit_ms, 50):.1f} ms, p99 {percentile(result.admit_ms, 99):.1f} ms",
              flush=True)
        for err in result.admit_errors[:10]:
            print(f"  ! admit: {err}", flush=True)
    finally:
        if lag_probe is not None:
            lag_probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag_probe
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
        if latency is not None:
            with contextlib.suppress(Exception):
                await latency.close()
        patients.clear()
        gc.unfreeze()
        gc.collect()
        close_s = time.perf_counter() - t0
        if server is not None:
            result.stop_code, result.stop_s = await stop_server(server)
            result.log_problems = server.log_problems()
            result.gc_log = args.server_gc_log
            result.gc_pauses = server.gc_pauses()
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
    print("waiting in one group" if not args.group_size else f"waiting in groups of {args.group_size}, each "
          "with its session open" + (" and its facilitator's socket" if args.facilitator_socket else ""))
    print(f"data dir (embedded Redis, AOF fsync always) under {args.tmp or tempfile.gettempdir()}")
    head = (f"{'waiting':>8} {'server RSS MB':>14} {'KB/conn':>8} {'connect all s':>14} {'hello p99 ms':>13} "
            f"{'admit p50 ms':>13} {'admit p99 ms':>13} {'admit max ms':>13} {'http p50 ms':>12} {'http p99 ms':>12}")
    print(head)
    for r in results:
        print(f"{r.side:<7}" if r.side else "", end="")
        print(f"{r.connected:>8} {mb(r.rss_waiting_kb):>14.1f} {r.kb_per_conn:>8.1f} {r.connect_s:>14.2f} "
              f"{percentile(r.hello_ms, 99):>13.1f} "
              f"{percentile(r.admit_ms, 50):>13.1f} {percentile(r.admit_ms, 99):>13.1f} "
              f"{max(r.admit_ms, default=math.nan):>13.1f} "
              f"{percentile(r.http_ms, 50):>12.1f} {percentile(r.http_ms, 99):>12.1f}")
    print()
    for r in results:
        quarter = max(1, len(r.admit_ms) // 4)
        label = f"{r.count:>6}{' ' + r.side if r.side else ''}"
        print(f"{label}: RSS start {mb(r.rss_start_kb):.1f} MB, before sockets {mb(r.rss_before_kb):.1f} MB, "
              f"waiting {mb(r.rss_waiting_kb):.1f} MB, after admits {mb(r.rss_after_admits_kb):.1f} MB, "
              f"peak {mb(r.hwm_kb):.1f} MB; redis-server {mb(r.redis_rss_kb):.1f} MB; server fds {r.server_fds}; "
              f"bench client {mb(r.client_rss_kb):.1f} MB; redis connections (server's pool + 1 of the bench) "
              f"{r.redis_clients.get('connected_clients', -1)}, "
              f"rejected {r.redis_clients.get('rejected_connections', -1)}")
        print(f"        setup {r.setup_s:.1f} s; connect rate {r.connected / r.connect_s:.0f}/s, "
              f"hello->waiting p50 {percentile(r.hello_ms, 50):.1f} ms; "
              f"/metrics waiting {r.metrics_waiting:g}, ws {r.metrics_ws:g}; "
              f"'admitted' before the HTTP answer {r.admitted_before_response}/{len(r.admit_ms)}")
        quarters = [r.admit_ms[i:i + quarter] for i in range(0, quarter * 4, quarter)]
        print("        admit p50/p99 ms by quarter of the admissions (more admitted = bigger roster pushes): "
              + ", ".join(f"#{i * quarter + 1}-{(i + 1) * quarter}: {percentile(q, 50):.1f}/{percentile(q, 99):.1f}"
                          for i, q in enumerate(quarters) if q))
        slow = sorted(range(len(r.admit_ms)), key=lambda i: r.admit_ms[i], reverse=True)[:5]
        print("        slowest admits (n-th admission: ms, server pings the bench received meanwhile, "
              "worst bench loop lag ms): "
              + ", ".join(f"#{i + 1}: {r.admit_ms[i]:.1f} ({pings_between(r.pings, *r.admit_windows[i])} pings, "
                          f"lag {worst_lag(r.client_lags, *r.admit_windows[i]) * 1000:.0f})" for i in sorted(slow)))
        if r.admit_windows:
            span = r.admit_windows[-1][1] - r.admit_windows[0][0]
            print(f"        admissions took {span:.1f} s; server pings received then: "
                  f"{pings_between(r.pings, r.admit_windows[0][0], r.admit_windows[-1][1])} "
                  f"(one per waiting socket per {args.heartbeat:g} s expected)")
        slow_redis = ", ".join(f"{name} {hits}x, max {worst} ms" for name, (hits, worst) in r.redis_slow.items())
        print(f"        redis-side stalls >= {RedisLatency.THRESHOLD_MS} ms while admitting (its latency monitor): "
              f"{slow_redis or 'none'}")
        if r.gc_log and r.admit_windows:
            start, end = r.admit_windows[0][0], r.admit_windows[-1][1]
            during = [(t, d, g) for t, d, g in r.gc_pauses if start <= t <= end]
            print(f"        server gc pauses >= 5 ms: {len(r.gc_pauses)} in the run, longest "
                  f"{max((d for _, d, _ in r.gc_pauses), default=0) * 1000:.0f} ms; while admitting: "
                  + (", ".join(f"{g} {d * 1000:.0f} ms" for _, d, g in during) or "none"))
            hit = [i for i in slow if any(a <= t + d and t <= b for t, d, _ in r.gc_pauses
                                          for a, b in [r.admit_windows[i]])]
            print(f"        slowest admits overlapping a server gc pause: {len(hit)}/{len(slow)}"
                  + (" (" + ", ".join(f"#{i + 1}" for i in sorted(hit)) + ")" if hit else ""))
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
    parser.add_argument("--setup-concurrency", type=int, default=8, help="HTTP requests in flight during setup")
    parser.add_argument("--tmp", default=None,
                        help="where the temporary data dir goes (default: the system temp dir); e.g. /dev/shm "
                             "to take disk fsync latency (the embedded Redis fsyncs every write) out of the figures")
    parser.add_argument("--server-gc-log", action="store_true",
                        help="diagnostic: run the server with a gc callback logging collection pauses >= 5 ms")
    parser.add_argument("--hold", type=float, default=None,
                        help="seconds all wait before admissions start (default: heartbeat + 1)")
    parser.add_argument("--group-size", type=int, default=0,
                        help="patients per group (each group with its open session and its facilitator's socket): "
                             "a clinic's evening of many groups; 0 (the default): one group with everyone")
    parser.add_argument("--no-facilitator-socket", dest="facilitator_socket", action="store_false",
                        help="admit over HTTP only, without the facilitator's page holding a WebSocket in the "
                             "session (which gets the waiting list and the roster after every change)")
    parser.add_argument("--compress", type=int, default=15, choices=(0, 9, 10, 11, 12, 13, 14, 15),
                        help="the patients' sockets offer permessage-deflate with these window bits, as browsers "
                             "do (15, the default); 0 offers none (the bench before 2026-12-02)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait before reading RSS")
    parser.add_argument("--before", default=None,
                        help="a checkout of an earlier commit: run its server too, alternating, and compare")
    parser.add_argument("--bare", action="store_true",
                        help="also hold the same sockets on a bare aiohttp server and compare RSS")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side per count (with --before)")
    args = parser.parse_args(argv)
    args.counts = [int(c) for c in str(args.counts).split(",") if c.strip()]
    if not args.counts or min(args.counts) < 1:
        parser.error("--counts: positive whole numbers, comma-separated")
    if not 1 <= args.admits <= GROUP_CAPACITY:
        parser.error(f"--admits must be between 1 and the group capacity ({GROUP_CAPACITY})")
    return args


async def amain(args: argparse.Namespace) -> int:
    results = []
    failures = []
    sides: list[tuple[str, str | None]] = [("", None)]
    if args.before:
        sides = [("before", before_path(Path(args.before))), ("after", None)]
    for n in args.counts:
        for _ in range(args.repeat):
            for side, pythonpath in sides:  # alternating, so drift on a shared machine hits both
                if side:
                    print(f"\n-- {side} --", flush=True)
                try:
                    results.append(await run_one(n, args, side, pythonpath))
                except Exception as exc:
                    failures.append(f"{n} waiting {side}: {type(exc).__name__}: {exc}")
                    print(f"  ! the run with {n} waiting failed: {type(exc).__name__}: {exc}", flush=True)
    if results:
        report(results, args)
        if args.before:
            compare(results)
        if args.bare:
            bare = {n: await bare_rss(n, args.heartbeat, args.connect_concurrency) for n in args.counts}
            print_bare(results, bare)
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


async def bare_rss(n: int, heartbeat: float, concurrency: int) -> tuple[int, int, int]:
    """RSS (kB) of a bare aiohttp server before and while holding `n` sockets, and how many held."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bare_ws", "--heartbeat", f"{heartbeat:g}", stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)).decode()
    port = int(line.rsplit(" ", 1)[1])
    await asyncio.sleep(1.0)  # settled after start-up
    before = proc_kb(process.pid, "VmRSS")
    gate = asyncio.Semaphore(concurrency)
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        async def one() -> None:
            async with gate:
                ws = await http.ws_connect(f"http://127.0.0.1:{port}/api/v1/ws")
                await ws.send_str(json.dumps({"type": "hello", "token": "x" * 120, "location": "home"}))
                msg = await ws.receive(timeout=FRAME_TIMEOUT)
                if msg.type is aiohttp.WSMsgType.TEXT:
                    sockets.append(ws)

        await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
        await asyncio.sleep(2.0)  # as --settle
        held = proc_kb(process.pid, "VmRSS")
        for ws in sockets:
            await ws.close()
    process.terminate()
    await process.wait()
    return before, held, len(sockets)


def print_bare(results: list[Result], bare: dict[int, tuple[int, int, int]]) -> None:
    print("\n== the server beside a bare aiohttp server holding the same sockets (RSS) ==")
    for r in results:
        if r.count not in bare:
            continue
        before, held, count = bare[r.count]
        print(f"{r.count:>6}{' ' + r.side if r.side else ''}: porchlight {mb(r.rss_waiting_kb):.1f} MB "
              f"({r.connected} waiting, {r.kb_per_conn:.1f} KB each), bare aiohttp {mb(held):.1f} MB "
              f"({count} held, {(held - before) / max(count, 1):.1f} KB each); ratio "
              f"{r.rss_waiting_kb / held:.2f}x (goal <= 2x)")


def compare(results: list[Result]) -> None:
    """The goals' figures, before beside after (medians over --repeat runs), and their ratio."""
    print("\n== before / after (median of the runs of each side; after/before ratio) ==")
    print(f"{'waiting':>8} {'figure':<16} {'before':>9} {'after':>9} {'ratio':>6}  goal (issue 15)")
    for n in sorted({r.count for r in results}):
        def fig(side: str, value: Callable[[Result], float], n: int = n) -> float:
            values = [value(r) for r in results if r.count == n and r.side == side]
            return statistics.median(values) if values else math.nan

        rows: list[tuple[str, Callable[[Result], float], str]] = [
            ("admit p50 ms", lambda r: percentile(r.admit_ms, 50), ""),
            ("admit p99 ms", lambda r: percentile(r.admit_ms, 99), "<= 10 ms"),
            ("admit max ms", lambda r: max(r.admit_ms, default=math.nan), "<= 50 ms"),
            ("server RSS MB", lambda r: mb(r.rss_waiting_kb), ""),
            ("KB/conn", lambda r: r.kb_per_conn, ""),
            ("hello p99 ms", lambda r: percentile(r.hello_ms, 99), ""),
        ]
        for name, value, goal in rows:
            before, after = fig("before", value), fig("after", value)
            print(f"{n:>8} {name:<16} {before:>9.1f} {after:>9.1f} {side_ratio(after, before):>6}  {goal}")
        runs = [f"{r.side} {percentile(r.admit_ms, 99):.1f}/{max(r.admit_ms, default=math.nan):.1f}"
                for r in results if r.count == n]
        print(f"{'':>8} each run's admit p99/max ms, in order: " + ", ".join(runs))


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
