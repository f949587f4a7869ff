"""Rooms per machine: the same rooms hosted by PORCHLIGHT_WORKERS=1 and by =2 (issue 10).

`python -m bench.media --workers-compare 1,2 --rooms K --sizes N` runs, for each worker count
in turn, one `porchlight serve` (embedded Redis; with 2 workers the supervisor passes its
listening socket to both) and K rooms at once: K groups of N enrolled patients, K sessions
opened a few seconds apart (so each worker's heartbeat shows the load the placement reads),
N synthetic participants per room (bench/media_client.py, as `bench/media.py` builds them).
During one window, measured per worker process (user+system CPU from /proc, packets from that
process's own /metrics) and per room (fps, latency, completeness from the participants).

Which process a request reached: every HTTP request goes over a fresh connection, and the bench
looks up which worker's file table holds the accepted end of it (/proc/net/tcp and
/proc/PID/fd); `/livez` on that connection names the process (X-Porchlight-Node), `/metrics` on
the same connection gives that process's counters. Which process hosts a room: the group's
owner record in Redis (the node id the placement wrote).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import redis.asyncio

from bench.media import LOOP, Room, Row, cpu_seconds, udp_drops
from bench.waiting_room import add_user, child_pids, login, post, proc_kb, start_server, stop_server
from server.store import keys
from server.store.embedded import EmbeddedRedis

IDLE_SECONDS = 5.0  # each worker's CPU with no room, measured first
PLACEMENT_PAUSE = 3.0  # seconds between opening sessions: more than a heartbeat (about 1 s)
TARGET_FPS, TARGET_P50_MS, TARGET_P95_MS = 14.0, 100.0, 250.0  # bench/media.py's room targets


@dataclass
class Worker:
    pid: int
    node_id: str = ""
    cpu: list[float] = field(default_factory=list)  # CPU seconds at the window's start and end
    packets_out: list[float] = field(default_factory=list)
    packets_in: list[float] = field(default_factory=list)
    rss_mb: float = math.nan
    idle_cores: float = math.nan  # before any room: heartbeats, leases, the bus

    def cores(self, span: float) -> float:
        return (self.cpu[1] - self.cpu[0]) / span

    def packets(self) -> float:
        return self.packets_out[1] - self.packets_out[0]

    def us_per_packet(self) -> float:
        return (self.cpu[1] - self.cpu[0]) / self.packets() * 1e6 if self.packets() > 0 else math.nan


@dataclass
class Result:
    workers: int
    size: int
    span: float
    processes: list[Worker]
    rooms: list[tuple[str, Row]]  # (hosting node id, the room's figures; its CPU columns unused)
    load: str  # /proc/loadavg during the window
    client_cores: float


def worker_pids(pid: int) -> list[int]:
    """The processes that serve: the supervisor's `serve` children, or the one process itself."""
    serving = []
    for child in child_pids(pid):
        with contextlib.suppress(OSError):
            if b"serve" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0"):
                serving.append(child)
    return serving or [pid]


def _holder(inode: str, pids: list[int]) -> int | None:
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                        return pid
    return None


def _accepted_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server's end of the connection from `client_port` (IPv4 loopback)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
                return inode
    return None


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> tuple[dict[str, str], str]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n".encode())
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    lines = (line.partition(":") for line in head.split("\r\n")[1:] if line)
    headers = {name.strip().lower(): value.strip() for name, _, value in lines}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return headers, body.decode()


async def probe(port: int, workers: dict[int, Worker]) -> dict[int, dict[str, float]]:
    """Every worker's node id and counters, by opening connections until each has answered one."""
    found: dict[int, dict[str, float]] = {}
    for _ in range(200):
        if len(found) == len(workers):
            break
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            headers, _ = await _get(reader, writer, "/livez")
            inode = _accepted_inode(port, writer.get_extra_info("sockname")[1])
            pid = _holder(inode, list(workers)) if inode else None
            if pid is None or pid in found:
                continue
            workers[pid].node_id = headers.get("x-porchlight-node", "")
            _, text = await _get(reader, writer, "/metrics")
            metrics: dict[str, float] = {}
            for line in text.splitlines():
                if line and not line.startswith("#"):
                    name, _, value = line.rpartition(" ")
                    with contextlib.suppress(ValueError):
                        metrics[name] = float(value)
            found[pid] = metrics
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    if len(found) < len(workers):
        raise RuntimeError(f"reached {len(found)} of {len(workers)} workers through the shared port")
    return found


async def sample(port: int, workers: dict[int, Worker]) -> None:
    """CPU of every worker, then each one's packet counters (read straight after)."""
    for pid, worker in workers.items():
        worker.cpu.append(cpu_seconds(pid))
    for pid, metrics in (await probe(port, workers)).items():
        workers[pid].packets_out.append(metrics.get("porchlight_media_packets_out_total", 0.0))
        workers[pid].packets_in.append(metrics.get("porchlight_media_packets_in_total", 0.0))


async def run(count: int, rooms: int, size: int, frames_file: Path, args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix="porchlight-media-workers-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        server = await start_server(data_dir, heartbeat=10.0, extra_env={"PORCHLIGHT_WORKERS": str(count)})
        store = redis.asyncio.from_url(EmbeddedRedis(data_dir).url, decode_responses=True)
        try:
            port = int(server.url.rsplit(":", 1)[1])
            workers = {pid: Worker(pid) for pid in worker_pids(server.pid)}
            await asyncio.sleep(2)  # past start-up
            idle0 = {pid: cpu_seconds(pid) for pid in workers}
            await asyncio.sleep(IDLE_SECONDS)
            for pid, worker in workers.items():
                worker.idle_cores = (cpu_seconds(pid) - idle0[pid]) / IDLE_SECONDS
            await add_user(server, "admin", "admin", "Bench Admin")
            await add_user(server, "facilitator", "facilitator", "Bench Facilitator")
            t0 = time.time() + 1 + rooms * (PLACEMENT_PAUSE + 4)  # a shared schedule, after every room's set-up
            async with aiohttp.ClientSession() as http:
                base = server.url
                admin = await login(http, base, "admin")
                facilitator = await login(http, base, "facilitator")
                placed: list[tuple[str, str, Room, list[asyncio.subprocess.Process]]] = []
                for r in range(rooms):
                    group = await post(http, base, admin, "/groups", {
                        "name": f"Bench group {r + 1}", "program": "IOP", "capacity": max(size, 2),
                        "facilitator_ids": [facilitator.user_id], "timezone": "UTC"}, 201)
                    tokens, offsets = [], {}
                    for i in range(size):
                        patient = await post(http, base, admin, "/patients", {"display_name": f"Bench {r}-{i}"}, 201)
                        enrollment = await post(http, base, admin, f"/groups/{group['id']}/enrollments",
                                                {"patient_id": patient["id"]}, 201)
                        tokens.append(enrollment["join_url"].rsplit("/j/", 1)[1])
                        offsets[patient["id"]] = i * LOOP // size
                    session = await post(http, base, facilitator, f"/groups/{group['id']}/sessions", {}, 201)
                    room_dir = Path(tmp) / f"room{r + 1}"
                    room_dir.mkdir()
                    room = Room(size, room_dir, t0, args)
                    clients = await room.spawn(base, tokens, offsets, frames_file, [])
                    placed.append((group["id"], session["id"], room, clients))
                    await asyncio.sleep(PLACEMENT_PAUSE)  # the owner's heartbeat carries its new load
                for _, session_id, _, _ in placed:
                    async with asyncio.timeout(120):
                        while True:
                            described = await (await http.get(
                                f"{base}/api/v1/sessions/{session_id}", headers=facilitator.headers())).json()
                            if len(described["waiting"]) == size:
                                break
                            await asyncio.sleep(0.2)
                    await post(http, base, facilitator, f"/sessions/{session_id}/admit", {"all": True})
                window = placed[0][2].window
                if time.time() > window[0] - 2:
                    print(f"  ! the rooms were admitted {time.time() - window[0] + 2:.1f} s too late for the "
                          "warm-up: raise --warmup", flush=True)
                await asyncio.sleep(max(0.0, window[0] - time.time()))
                drops0 = udp_drops()
                await sample(port, workers)
                await asyncio.sleep(max(0.0, window[1] - time.time()))
                await sample(port, workers)
                load = Path("/proc/loadavg").read_text().split(" ")[:3]
                drops = udp_drops() - drops0
                owners = [await store.get(keys.group_owner(group_id)) or "?" for group_id, _, _, _ in placed]
                for worker in workers.values():
                    worker.rss_mb = proc_kb(worker.pid, "VmRSS") / 1024
                for _, _, _, clients in placed:
                    for client in clients:
                        await client.wait()
        finally:
            await store.aclose()
            await stop_server(server)
        rows = [(owner, room.row("forward", 0.0, 0.0, 0.0, (math.nan, math.nan), math.nan, drops))
                for owner, (_, _, room, _) in zip(owners, placed, strict=True)]
        return Result(count, size, window[1] - window[0], list(workers.values()), rows, " ".join(load),
                      sum(row.client_cores for _, row in rows))


def report(results: list[Result], rooms: int) -> None:
    print()
    print("Per worker process (CPU: user+system from /proc over the window; packets: that process's /metrics)")
    print(f"{'workers':>7} {'process':>7} {'rooms':>5} {'idle':>6} {'cores':>6} {'pkts/s out':>10} "
          f"{'us/packet':>9} {'RSS MB':>7}")
    for res in results:
        for i, w in enumerate(res.processes, 1):
            hosted = sum(1 for owner, _ in res.rooms if owner == w.node_id)
            print(f"{res.workers:>7} {i:>7} {hosted:>5} {w.idle_cores:>6.3f} {w.cores(res.span):>6.3f} "
                  f"{w.packets() / res.span:>10.0f} "
                  f"{w.us_per_packet():>9.1f} {w.rss_mb:>7.0f}")
        total_cpu = sum(w.cpu[1] - w.cpu[0] for w in res.processes)
        total_packets = sum(w.packets() for w in res.processes)
        us = total_cpu / total_packets * 1e6 if total_packets else math.nan
        idle = sum(w.idle_cores for w in res.processes)
        print(f"{res.workers:>7} {'all':>7} {len(res.rooms):>5} {idle:>6.3f} {total_cpu / res.span:>6.3f} "
              f"{total_packets / res.span:>10.0f} {us:>9.1f}")
    print()
    print("Per room (participants' reports)")
    print(f"{'workers':>7} {'room':>4} {'N':>3} {'on process':>10} {'fps min':>7} {'fps med':>7} {'p50 ms':>7} "
          f"{'p95 ms':>7} {'published':>9} {'streams':>8}  complete")
    for res in results:
        index = {w.node_id: i for i, w in enumerate(res.processes, 1)}
        for k, (owner, row) in enumerate(res.rooms, 1):
            print(f"{res.workers:>7} {k:>4} {row.size:>3} {index.get(owner, '?'):>10} {row.fps_min:>7.1f} "
                  f"{row.fps_median:>7.1f} {row.latency_p50:>7.0f} {row.latency_p95:>7.0f} {row.published:>9} "
                  f"{row.streams_seen:>8}  {'yes' if row.complete else f'NO ({row.missing})'}")
        print(f"        load average at the window's end {res.load}; the participants used "
              f"{res.client_cores:.2f} cores; UDP receive-buffer drops {res.rooms[0][1].udp_dropped}")
    print()
    for res in results:
        busy = [w for w in res.processes if w.packets() > 0]
        if not busy or not all(row.complete for _, row in res.rooms):
            print(f"{res.workers} worker(s): a room incomplete or no process forwarded: no projection")
            continue
        missed = [k for k, (_, row) in enumerate(res.rooms, 1) if row.fps_min < TARGET_FPS
                  or row.latency_p50 > TARGET_P50_MS or row.latency_p95 > TARGET_P95_MS]
        if missed:  # a starved room costs less CPU because less went through: no capacity from it
            print(f"{res.workers} worker(s): room(s) {missed} below the targets (fps >= {TARGET_FPS}, latency "
                  f"p50 <= {TARGET_P50_MS} ms, p95 <= {TARGET_P95_MS} ms): no projection")
            continue
        # A room's cost on the process that hosts it: what the process used above its idle
        # CPU, per room hosted there; a process carries rooms up to 0.9 core with its idle cost.
        hosting = [w for w in busy if any(o == w.node_id for o, _ in res.rooms)]
        per_room = [(w.cores(res.span) - w.idle_cores) / sum(1 for o, _ in res.rooms if o == w.node_id)
                    for w in hosting]
        cost = statistics.median(per_room)
        idle = statistics.median(w.idle_cores for w in hosting)
        carry = math.floor((0.9 - idle) / cost) if cost > 0 else 0
        usable = min(res.workers, os.cpu_count() or 1)
        print(f"{res.workers} worker(s): a {res.size}-person room costs its process {cost:.3f} cores above the "
              f"process's idle {idle:.3f} (median over the {len(hosting)} hosting process(es)); at <= 0.9 core "
              f"a process carries {carry} such rooms: PROJECTED {carry * usable} rooms on this machine with "
              f"{res.workers} worker(s) on {os.cpu_count()} cores (from the per-process figures; not measured "
              f"with {carry * usable} rooms, and the participants' CPU on the same cores is not counted)")
        # The 12-person room, from this run's CPU per packet and packets per stream.
        us = sum(w.cpu[1] - w.cpu[0] for w in hosting) / sum(w.packets() for w in hosting) * 1e6
        per_stream = sum(w.packets() for w in hosting) / res.span / (len(res.rooms) * res.size * (res.size - 1))
        big = us * 1e-6 * per_stream * 12 * 11
        print(f"    a 12-person room at this run's {us:.0f} us per packet and {per_stream:.0f} packets/s per "
              f"stream: {big:.2f} cores of forwarding (PROJECTED); a room lives in one process, so it must fit "
              f"one core: {math.floor((0.9 - idle) / big) if big < 0.9 - idle else 0} per worker at <= 0.9 core")
