"""Group rooms through one server process: packet forwarding against aiortc's default path.

For each room size N (default 4, 8, 12) a fresh `porchlight serve` is started (embedded Redis),
a group with N enrolled patients is created over HTTP, a session is opened and N synthetic
participants (bench/media_client.py), each in its own process, check in, are admitted and
publish 640x360 VP8 at 15 fps (~500 kbps) and Opus (a 440 Hz tone, ~32 kbps), both
pre-encoded so the clients' CPU goes to networking, not encoding; each publisher starts at
its own place in the 4 s VP8 loop, so keyframes are spread out as in a real group. Every
participant sees every other. After a warm-up, during a fixed window, measured:

- server CPU: user+system time of the server process (not its redis-server) / wall time,
  in cores; and per forwarded RTP packet (packets from /metrics);
- forwarded share: packets sent / (packets received x (N-1)); 1.00 means the server passed on
  everything its publishers sent it (whatever the viewers then managed to read);
- server RSS at the end of the window (with --sides also that of all the server's processes:
  Porchlight's delivery process and embedded redis-server with it);
- at every viewer, per remote participant: frames per second received whole, and
  capture-to-receive latency per frame (p50/p95; capture times are on a shared schedule);
- at one probe viewer that decodes two of its video streams with aiortc: decoded frames per
  second (proof that what arrives is decodable VP8, not only packets);
- with --profile N: py-spy samples the server during the window of the N-person room and the
  functions with the most samples (own time) are printed.

The same rooms then run through aiortc's default decode/re-encode path (bench/transcode.py)
in the same run, and the ratio of server CPU is printed. Figures are printed, not asserted.

    python -m bench.media [--sizes 4,8,12] [--transcode-sizes 4,8] [--window 10] [--warmup 10]
                          [--phone-tiles 4] [--slow-viewer 1000] [--media-port 50000]
                          [--simulcast [--layer-kbps 150,200,1200] [--laptop-tile 640x480]]
    python -m bench.media --sides porchlight,janus [--sizes 4,8,12] [--repeat K] [--janus-event-loops N]
    python -m bench.media --workers-compare 1,2 --rooms K --sizes N

With --workers-compare 1,2 --rooms K the same K rooms of N at once are hosted by PORCHLIGHT_WORKERS=1,
then =2 (bench/media_workers.py): per worker process its rooms, CPU and CPU per forwarded packet;
per room fps, latency and completeness; and the rooms per machine that the per-process figures
project.

With --media-port P each forwarding room runs twice in a row, the second time with
PORCHLIGHT_MEDIA_PORT=P (path "port": every peer connection on one UDP port), and the ratio of
the CPU per forwarded packet is printed, with the datagrams the port dropped.

With --slow-viewer KBIT (root: network namespaces) the server and every participant but one run
in a network namespace and the last viewer in a second one, joined by a veth pair whose server
end has `tbf rate KBIT` (its downlink); publishers send 320x180 VP8 at ~150 kbps (standing in for
a simulcast's smallest layer) and the first is the loud active speaker; that viewer estimates its
downlink as a browser does (GCC over abs-send-time, aiortc's) and sends REMB. Printed: whom it
heard, its audio gaps over 200 ms, the speaker's fps, how many other tiles are paused, its
downlink and its REMB.

With --sides porchlight,janus [--repeat K] (root: network namespaces; Debian's `janus` package)
the same rooms run through Porchlight's forwarder and through Janus 1.1.2's VideoRoom
(bench/janus.py), alternately, K pairs per size (the order flipped every repeat), both servers and
all participants inside one network namespace on a veth address (Janus does not use loopback for
ICE). Janus's side: the same clients with Janus's signalling, each with one publish and one
multistream subscribe connection (Porchlight's shape); CPU and RSS of the janus process; packets
from its Admin API. Printed: each pair side by side with the Porchlight/Janus ratios, and per N
the medians over the pairs in which both sides got every stream, against the issue's goals
(CPU per packet <= 0.8x Janus's at N=12, latency p50 <= Janus's + 5 ms, RSS <= 2x Janus's).
A third side, `before` (`--sides porchlight,before,janus --before DIR`), runs another checkout's
server code (bench/sides.py) with the same clients: this change against the last, in one run.

With --phone-tiles N one viewer is a phone whose grid shows N of the others (a `view` frame):
the downlink of that viewer and of those that show everyone are printed (bytes on the wire,
IP and UDP headers included).

With --simulcast every participant publishes its camera as a browser does with web/static/media.js's
encodings (bench/simulcast.py): three pre-encoded VP8 layers (160x120, 320x240, 640x480 at
150/200/1200 kbps, or --layer-kbps), each on its own SSRC with the RID header extension, offered
with a=rid/a=simulcast lines. The viewers other than the probe and the phone show everyone at
--laptop-tile (a `view` frame; `hidden`: they show nobody, sound only, which measures the phone
with less load on the machine). Printed per viewer: its downlink, the fps of the tiles it shows and
the layers they came in; checked: the server reported on every layer of every publisher (RTCP).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import math
import os
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import av

from bench import janus
from bench.media_client import PROBE_DECODES
from bench.sides import before_path
from bench.simulcast import layer_file, layer_sizes
from bench.waiting_room import (
    add_user,
    login,
    percentile,
    porchlight_command,
    post,
    proc_kb,
    server_metrics,
    start_server,
    stop_server,
)

FPS = 15
LOOP = 60  # pre-encoded frames; a keyframe starts each loop (every 4 s)


def encode_loop(path: Path, width: int = 640, height: int = 360, bitrate: int = 500_000) -> float:
    """Encode LOOP frames of a moving, slightly noisy picture to VP8; returns the bitrate. Beside
    it (`.key`), each of the same pictures encoded as a keyframe: a publisher asked for one (a
    PLI) sends the next frame from there, as a browser's encoder would."""
    frames = _encode(_pictures(width, height), width, height, bitrate, gop=LOOP)
    path.write_bytes(b"".join(struct.pack("!I", len(f)) + f for f in frames))
    keyframes = _encode(_pictures(width, height), width, height, bitrate, gop=1)
    path.with_suffix(".key").write_bytes(b"".join(struct.pack("!I", len(f)) + f for f in keyframes))
    return sum(map(len, frames)) * 8 / (len(frames) / FPS)


def _pictures(width: int, height: int) -> list[av.VideoFrame]:
    rng = random.Random(1)
    noise = bytes(rng.randrange(10) for _ in range(width * height * 2))
    ramp = bytes(range(256)) * (width // 256 + 2)
    pictures = []
    for k in range(LOOP):
        frame = av.VideoFrame(width, height, "yuv420p")
        luma = b"".join(ramp[(r + 8 * k) % 256:(r + 8 * k) % 256 + width] for r in range(height))
        off = (k * 997) % (width * height)
        frame.planes[0].update(bytes((a + b) & 0xFF for a, b in zip(luma, noise[off:off + len(luma)], strict=True)))
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * (plane.line_size * (height // 2)))
        frame.pts = k
        pictures.append(frame)
    return pictures


def _encode(pictures: list[av.VideoFrame], width: int, height: int, bitrate: int, gop: int) -> list[bytes]:
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.bit_rate = width, height, "yuv420p", bitrate
    ctx.framerate = fractions.Fraction(FPS, 1)
    ctx.time_base = fractions.Fraction(1, FPS)
    ctx.gop_size = gop
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    frames: list[bytes] = []
    for picture in pictures:
        frames += [bytes(p) for p in ctx.encode(picture)]
    frames += [bytes(p) for p in ctx.encode(None)]
    return frames


def encode_tone(path: Path) -> None:
    """One second of a 440 Hz tone as 50 Opus packets (20 ms each), looped by the clients."""
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate, ctx.layout, ctx.format, ctx.bit_rate = 48000, "stereo", "s16", 32000
    packets: list[bytes] = []
    for k in range(50):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        values = (int(3000 * math.sin(2 * math.pi * 440 * (k * 960 + i) / 48000)) for i in range(960))
        frame.planes[0].update(b"".join(struct.pack("<hh", v, v) for v in values))
        frame.sample_rate, frame.pts, frame.time_base = 48000, k * 960, fractions.Fraction(1, 48000)
        packets += [bytes(p) for p in ctx.encode(frame)]
    path.write_bytes(b"".join(struct.pack("!I", len(p)) + p for p in packets))


def udp_drops() -> int:
    """Datagrams this network namespace's UDP dropped for a full receive buffer (RcvbufErrors):
    inside the benchmark's own namespace, the servers' and participants' alone."""
    with open("/proc/net/snmp") as f:
        header, values = [line.split() for line in f if line.startswith("Udp:")][:2]
    return int(values[header.index("RcvbufErrors")])


def tree_rss_mb(pid: int) -> float:
    """VmRSS of a process and all its descendants, summed, in MB: Porchlight's serving process,
    the delivery process it starts and its embedded redis-server; Janus's one process. Pages
    they share (libraries) count in each: a sum that overstates, never understates."""
    total, todo = 0, [pid]
    while todo:
        process = todo.pop()
        total += max(0, proc_kb(process, "VmRSS"))
        for task in Path(f"/proc/{process}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(child) for child in (task / "children").read_text().split()]
    return total / 1024


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Row:
    path: str
    size: int
    cores: float
    us_per_packet: float
    forwarded: float
    packets_per_s: float
    rss_mb: float
    all_rss_mb: float  # the server's process and its descendants (tree_rss_mb)
    fps_min: float
    fps_median: float
    decoded_fps_min: float
    latency_p50: float
    latency_p95: float
    streams_seen: str
    published: str
    complete: bool  # every participant published and every stream arrived
    missing: str  # what was missing when not complete
    client_cores: float
    downlink_kbps: float  # median over the viewers that show everyone (not the phone, not the probe)
    phone_kbps: float  # the phone viewer's (--phone-tiles), NaN without one
    phone_fps: float  # the phone's lowest frames per second over the tiles it shows
    port_dropped: float  # datagrams PORCHLIGHT_MEDIA_PORT dropped (path "port" only)
    udp_dropped: int  # datagrams dropped for full receive buffers in the window (in a namespace: ours only)
    slow: dict[str, Any] | None = None  # --slow-viewer: what the viewer behind the shaped link got
    viewers: list[dict[str, Any]] | None = None  # --simulcast: each viewer's downlink, fps and layers
    slow_kbit: int = 0


async def run_room(path: str, size: int, frames_file: Path, args: argparse.Namespace) -> Row:
    command = [sys.executable, "-m", "bench.transcode"] if path == "transcode" else porchlight_command()
    extra_env = {"PORCHLIGHT_MEDIA_PORT": str(args.media_port)} if path == "port" else {}
    if path == "before":  # another checkout's server code, the same clients (bench/sides.py)
        # PYTHONSAFEPATH: its delivery process (`python -m server deliver`) finds that code too,
        # not this checkout's from the working directory.
        extra_env |= {"PYTHONPATH": args.before_path, "PYTHONSAFEPATH": "1"}
    with tempfile.TemporaryDirectory(prefix="porchlight-media-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        if args.inside:  # the benchmark's network namespace: the server on its veth address
            extra_env |= {"PORCHLIGHT_HOST": SERVER_ADDRESS, "PORCHLIGHT_MEDIA_ADDRESS": SERVER_ADDRESS}
        server = await start_server(data_dir, heartbeat=10.0, command=command, extra_env=extra_env)
        try:
            await add_user(server, "admin", "admin", "Bench Admin")
            await add_user(server, "facilitator", "facilitator", "Bench Facilitator")
            async with aiohttp.ClientSession() as http:
                base = server.url
                admin = await login(http, base, "admin")
                facilitator = await login(http, base, "facilitator")
                group = await post(http, base, admin, "/groups", {
                    "name": "Bench group", "program": "IOP", "capacity": max(size, 2),
                    "facilitator_ids": [facilitator.user_id], "timezone": "UTC"}, 201)
                tokens, offsets = [], {}
                for i in range(size):
                    patient = await post(http, base, admin, "/patients", {"display_name": f"Bench {i}"}, 201)
                    enrollment = await post(http, base, admin, f"/groups/{group['id']}/enrollments",
                                            {"patient_id": patient["id"]}, 201)
                    tokens.append(enrollment["join_url"].rsplit("/j/", 1)[1])
                    offsets[patient["id"]] = i * LOOP // size  # keyframes spread over the loop
                session = await post(http, base, facilitator, f"/groups/{group['id']}/sessions", {}, 201)
                room = Room(size, Path(tmp), time.time() + 1, args)
                clients = await room.spawn(base, tokens, offsets, frames_file, [])
                async with asyncio.timeout(120):
                    while True:
                        described = await (await http.get(
                            f"{base}/api/v1/sessions/{session['id']}", headers=facilitator.headers())).json()
                        if len(described["waiting"]) == size:
                            break
                        await asyncio.sleep(0.2)
                await post(http, base, facilitator, f"/sessions/{session['id']}/admit", {"all": True})
                await asyncio.sleep(max(0.0, room.window[0] - time.time()))
                cpu0, (packets0, in0) = cpu_seconds(server.proc.pid), await _packets(http, base)
                drops0 = udp_drops()
                profile = None
                if args.profile == size and path == "forward":
                    profile = await asyncio.create_subprocess_exec(
                        "py-spy", "record", "--format", "raw", "-r", "50", "-d", str(int(args.window)),
                        "-o", str(Path(tmp) / "profile.txt"), "-p", str(server.proc.pid),
                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
                await asyncio.sleep(max(0.0, room.window[1] - time.time()))
                cpu1, (packets1, in1) = cpu_seconds(server.proc.pid), await _packets(http, base)
                drops = udp_drops() - drops0
                scraped = await server_metrics(http, base)
                dropped = scraped.get("porchlight_media_port_dropped_total", 0.0)
                print(f"  server at the window's end: viewer tracks waiting for a keyframe "
                      f"{scraped.get('porchlight_media_viewer_tracks_waiting', math.nan):.0f}, not ready "
                      f"{scraped.get('porchlight_media_viewer_tracks_unready', math.nan):.0f}, held "
                      f"{scraped.get('porchlight_media_viewer_tracks_held', math.nan):.0f}; keyframe requests sent "
                      f"{scraped.get('porchlight_media_keyframe_requests_total', math.nan):.0f}; send drops "
                      f"{scraped.get('porchlight_media_send_drops_total', math.nan):.0f}", flush=True)
                rss = proc_kb(server.proc.pid, "VmRSS") / 1024, tree_rss_mb(server.proc.pid)
                for client in clients:
                    await client.wait()
                if profile is not None:
                    await profile.wait()
                    print_profile(Path(tmp) / "profile.txt")
        finally:
            await stop_server(server)
        return room.row(path, cpu1 - cpu0, packets1 - packets0, in1 - in0, rss,
                        dropped if path == "port" else math.nan, drops)


async def run_janus_room(size: int, frames_file: Path, args: argparse.Namespace) -> Row:
    """The same room through Janus's VideoRoom (bench/janus.py): the same clients, publishing and
    subscribing with Janus's signalling; CPU and RSS of the janus process; packets from its
    Admin API."""
    with tempfile.TemporaryDirectory(prefix="porchlight-media-bench-janus-") as tmp:
        server = await janus.start(Path(tmp), SERVER_ADDRESS, args.janus_event_loops)
        try:
            await janus.create_room(server.url, JANUS_ROOM, size)
            tokens = [str(i + 1) for i in range(size)]  # the feed ids
            offsets = {feed: i * LOOP // size for i, feed in enumerate(tokens)}
            room = Room(size, Path(tmp), time.time() + 1, args)
            clients = await room.spawn(server.url, tokens, offsets, frames_file, ["--janus", str(JANUS_ROOM)])
            await asyncio.sleep(max(0.0, room.window[0] - time.time()))
            cpu0, (packets0, in0) = cpu_seconds(server.proc.pid), await janus.packet_counts(server.admin)
            drops0 = udp_drops()
            await asyncio.sleep(max(0.0, room.window[1] - time.time()))
            cpu1, (packets1, in1) = cpu_seconds(server.proc.pid), await janus.packet_counts(server.admin)
            drops = udp_drops() - drops0
            rss = proc_kb(server.proc.pid, "VmRSS") / 1024, tree_rss_mb(server.proc.pid)
            for client in clients:
                await client.wait()
        finally:
            await janus.stop(server)
        return room.row("janus", cpu1 - cpu0, packets1 - packets0, in1 - in0, rss, math.nan, drops)


class Room:
    """One room's participants (bench/media_client.py processes) and what they report."""

    def __init__(self, size: int, tmp: Path, t0: float, args: argparse.Namespace) -> None:
        self.size, self.tmp, self.t0, self.args = size, tmp, t0, args
        start = t0 + args.warmup + size * 0.5
        self.window = (start, start + args.window)
        self.outs = [tmp / f"client{i}.json" for i in range(size)]

    async def spawn(self, base: str, tokens: list[str], offsets: dict[str, int], frames_file: Path,
                    extra: list[str]) -> list[asyncio.subprocess.Process]:
        """Start the participants, each in its own process; the first is the probe that decodes."""
        args, size = self.args, self.size
        offsets_file = self.tmp / "offsets.json"
        offsets_file.write_text(json.dumps(offsets))
        netns = args.inside.split(",") if args.inside else None  # (the server's, the slow viewer's)
        slow = size - 1 if args.slow_viewer else -1  # the viewer behind the shaped link
        assert netns or slow < 0
        niced = ["nice", "-n", str(args.clients_nice)] if args.clients_nice else []
        return [
            await asyncio.create_subprocess_exec(
                *niced, *(["ip", "netns", "exec", netns[1]] if netns and i == slow else []),
                sys.executable, "-m", "bench.media_client", base, token, str(frames_file), str(self.t0),
                str(self.window[0]), str(self.window[1]), str(out), "--offsets", str(offsets_file),
                "--offset", str(list(offsets.values())[i]), *(["--decode"] if i == 0 else []),
                *(["--view", str(args.phone_tiles), "--tile", args.phone_tile]
                  if i == 1 and args.phone_tiles else []),
                *(["--simulcast"] if args.simulcast else []),
                *(["--grid", args.laptop_tile] if args.simulcast and i > (1 if args.phone_tiles else 0) else []),
                *(["--speaker"] if args.slow_viewer and i == 0 else []), *(["--remb"] if i == slow else []),
                *(["--silent"] if args.listeners and i != 0 else []),
                *extra, stdout=asyncio.subprocess.DEVNULL, stderr=(self.tmp / f"client{i}.log").open("w"))
            for i, (token, out) in enumerate(zip(tokens, self.outs, strict=True))
        ]

    def row(self, path: str, cpu_s: float, packets: float, packets_in: float, rss: tuple[float, float],
            dropped: float, udp_dropped: int) -> Row:
        """The figures of the window from the server's counters and the participants' reports."""
        args, size, window = self.args, self.size, self.window
        results = [json.loads(out.read_text()) for out in self.outs if out.exists()]
        if args.keep:  # the participants' reports and logs, the server's log and config
            kept = Path(args.keep) / f"{path}-{size}-{time.strftime('%H%M%S')}"
            shutil.copytree(self.tmp, kept, ignore=shutil.ignore_patterns("data", "plugins", "transports"))
            print(f"  kept in {kept}")
        if len(results) < size:
            print((self.tmp / "client1.log").read_text()[-3000:])
        span = window[1] - window[0]
        fps, latency, seen = [], [], 0
        slow_result = results.pop() if args.slow_viewer and len(results) == size else None
        hidden = [r for r in results if r.get("grid") == "hidden"]  # --laptop-tile hidden: sound only
        for result in results:
            for stream in result["streams"].values() if result not in hidden else ():
                fps.append(stream["frames"] / span)
                latency += stream["latency_ms"]
                seen += stream["frames"] > 0
        decoded = [n / span for n in results[0]["decoded"].values()] if results else []
        published = sum(1 for r in results + ([slow_result] if slow_result else []) if r.get("published"))
        expected_streams = (size - (1 if args.slow_viewer else 0)) * (size - 1) - min(PROBE_DECODES, size - 1)
        phones = [r for r in results if r.get("view")]
        expected_streams -= sum(max(0, size - 1 - r["view"]) for r in phones)  # a phone shows only a few
        expected_streams -= len(hidden) * (size - 1)
        everyone = [r for r in results[1:] if not r.get("view")]  # the probe's socket is not counted
        kbps = [r["downlink_bytes"] * 8 / span / 1000 for r in everyone]
        phone_fps = [stream["frames"] / span for r in phones for stream in r["streams"].values() if stream["frames"]]
        refused = sum(r.get("refusals", 0) for r in results)
        layered = [r for r in results if r.get("layers_sent")]  # --simulcast: each publisher's layers
        unreported = sum(1 for r in layered for layer in r["layers_sent"].values() if not layer["reported"])
        slow = slow_summary(slow_result, span, size, results) if args.slow_viewer else None
        missing = [what for what, ok in (
            (f"{size - published} did not publish", published == size),
            (f"{expected_streams - seen} streams did not arrive", seen == expected_streams),
            (f"the probe decoded {len(decoded)} of its {min(PROBE_DECODES, size - 1)} streams",
             len(decoded) == min(PROBE_DECODES, size - 1)),
            ("the shaped viewer did not hear everyone", slow is None or slow["heard"] == size - 1),
            (f"{unreported} layers the server never reported on", unreported == 0),
            (f"{size - len(layered)} sent no layers", not args.simulcast or len(layered) == size),
        ) if not ok]
        return Row(
            slow=slow, slow_kbit=args.slow_viewer,
            path=path, size=size, cores=cpu_s / span, us_per_packet=cpu_s / packets * 1e6 if packets else math.nan,
            packets_per_s=packets / span, rss_mb=rss[0], all_rss_mb=rss[1],
            forwarded=packets / (packets_in * (size - 1)) if packets_in > 0 else math.nan,
            fps_min=min(fps, default=0.0), fps_median=statistics.median(fps) if fps else 0.0,
            decoded_fps_min=min(decoded, default=0.0),
            latency_p50=percentile(latency, 50), latency_p95=percentile(latency, 95),
            streams_seen=f"{seen}/{expected_streams}",
            published=f"{published}/{size}" + (f" ({refused} offers retried)" if refused else ""),
            complete=not missing,
            missing=", ".join(missing),
            client_cores=sum(r["cpu_s"] for r in results) / (window[1] - self.t0 + 2),
            downlink_kbps=statistics.median(kbps) if kbps else math.nan,
            phone_kbps=phones[0]["downlink_bytes"] * 8 / span / 1000 if phones else math.nan,
            phone_fps=min(phone_fps, default=math.nan),
            port_dropped=dropped, udp_dropped=udp_dropped,
            viewers=[viewer_summary(i, r, span) for i, r in enumerate(results)] if args.simulcast else None,
        )


def viewer_summary(i: int, result: dict[str, Any], span: float) -> dict[str, Any]:
    """One viewer of a simulcast room: what it shows, its downlink, the fps of its shown tiles
    and the layers their frames came in."""
    streams = result["streams"].values()
    shown = [s for s in streams if s["frames"]] if result.get("view") else \
        [] if result.get("grid") == "hidden" else list(streams)
    fps = [s["frames"] / span for s in shown]
    layers: dict[str, int] = {}
    for stream in shown:
        if stream.get("layers"):  # the layer most of its frames came in
            main = max(stream["layers"], key=stream["layers"].get)
            layers[main] = layers.get(main, 0) + 1
    role = ("probe (decodes 2, shows all at the best layer)" if i == 0
            else f"phone ({result['view']} tiles)" if result.get("view")
            else "laptop (hidden: sound only)" if result.get("grid") == "hidden"
            else f"laptop (all at {result['grid']})" if result.get("grid") else "shows all")
    kinds = {kind: octets * 8 / span / 1000 for kind, octets in result.get("downlink_kinds", {}).items()}
    return {"role": role, "kbps": result["downlink_bytes"] * 8 / span / 1000, "tiles": len(shown), "kinds": kinds,
            "fps_min": min(fps, default=0.0), "fps_median": statistics.median(fps) if fps else 0.0,
            "layers": dict(sorted(layers.items())), "phone": bool(result.get("view"))}


def slow_summary(result: dict[str, Any] | None, span: float, size: int,
                 others: list[dict[str, Any]]) -> dict[str, Any]:
    """What the viewer behind the shaped link got: whom it heard, its audio gaps, the speaker's
    video and the other tiles', its downlink and the estimate it reported."""
    if result is None:
        return {"heard": 0, "gaps": 0, "longest_gap_ms": float("nan"), "speaker_fps": 0.0, "paused": 0,
                "moving": [], "kbps": float("nan"), "estimate_kbps": float("nan"), "speaker": None}
    speakers = [s for r in others + [result] for s in r.get("speakers", [])]
    speaker = speakers[-1] if speakers else None
    audio = result.get("audio", {})
    fps = {pid: stream["frames"] / span for pid, stream in result["streams"].items()}
    other_fps = [f for pid, f in fps.items() if pid != speaker]
    estimates = result.get("estimates", [])
    return {
        "heard": sum(1 for a in audio.values() if a["packets"] > 0),
        "gaps": sum(a["gaps"] for a in audio.values()),
        "longest_gap_ms": max((a["longest_gap_ms"] for a in audio.values()), default=float("nan")),
        "speaker": speaker,
        "speaker_fps": fps.get(speaker, 0.0) if speaker else 0.0,
        "paused": (size - 2) - sum(1 for f in other_fps if f >= 1.0),  # the others that sent (almost) nothing
        "moving": sorted(round(f, 1) for f in other_fps if f >= 1.0),
        "kbps": result["downlink_bytes"] * 8 / span / 1000,
        "estimate_kbps": statistics.median(estimates) / 1000 if estimates else float("nan"),
        "published": result.get("published", False),
    }


def print_profile(path: Path, top: int = 15) -> None:
    """Own samples per function from py-spy's collapsed stacks."""
    if not path.exists():
        print("    (no profile: is py-spy installed? pip install py-spy)")
        return
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frame = stack.rsplit(";", 1)[-1]
        own[frame] = own.get(frame, 0) + int(count)
        total += int(count)
    print(f"    server profile, own time ({total} samples):")
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {100 * count / total:5.1f}%  {frame}")


async def _packets(http: aiohttp.ClientSession, base: str) -> tuple[float, float]:
    metrics = await server_metrics(http, base)
    return metrics.get("porchlight_media_packets_out_total", 0.0), metrics.get("porchlight_media_packets_in_total", 0.0)


def report(rows: list[Row]) -> None:
    print()
    print(f"{'path':<10} {'N':>3} {'server cores':>12} {'us/packet':>9} {'pkts/s out':>10} {'fwd':>5} {'RSS MB':>7} "
          f"{'fps min':>7} {'fps med':>7} {'decoded min':>11} {'p50 ms':>7} {'p95 ms':>7} {'streams':>8} "
          f"{'client cores':>12}")
    for r in rows:
        print(f"{r.path:<10} {r.size:>3} {r.cores:>12.3f} {r.us_per_packet:>9.1f} {r.packets_per_s:>10.0f} "
              f"{r.forwarded:>5.2f} "
              f"{r.rss_mb:>7.0f} {r.fps_min:>7.1f} {r.fps_median:>7.1f} {r.decoded_fps_min:>11.1f} "
              f"{r.latency_p50:>7.0f} {r.latency_p95:>7.0f} {r.streams_seen:>8} {r.client_cores:>12.2f}")
    for r in rows:
        phone = "" if math.isnan(r.phone_kbps) else \
            f"; the phone (its view shows a few) {r.phone_kbps:.0f} kbps, its tiles at >= {r.phone_fps:.1f} fps"
        print(f"  {r.path} N={r.size}: downlink per viewer showing everyone {r.downlink_kbps:.0f} kbps{phone}")
    for r in rows:
        for i, v in enumerate(r.viewers or []):
            layers = ", ".join(f"{rid} x{count}" for rid, count in v["layers"].items()) or "none recognised"
            kinds = v["kinds"]
            print(f"  {r.path} N={r.size} viewer {i:>2} {v['role']:<30} {v['kbps']:>6.0f} kbps (video "
                  f"{kinds.get('video', 0):.0f}, audio {kinds.get('audio', 0):.0f}, "
                  f"RTCP/STUN {kinds.get('other', 0):.0f}); "
                  f"its {v['tiles']} tiles {v['fps_min']:.1f}-{v['fps_median']:.1f} fps (min-median); layers {layers}")
        if r.viewers:
            print(f"  {r.path} N={r.size}: {r.udp_dropped} datagrams dropped for full UDP receive buffers in the "
                  f"window (outside a network namespace: the machine's)")
        phones = [v for v in r.viewers or [] if v["phone"]]
        if phones:
            met = phones[0]["kbps"] <= 1500 and phones[0]["fps_min"] >= 15 * 0.95
            print(f"  {r.path} N={r.size}: the phone {phones[0]['kbps']:.0f} kbps at >= {phones[0]['fps_min']:.1f} fps"
                  f"{goal(met, '<= 1500 kbps at >= 15 fps')}")
    for r in rows:
        if r.slow is not None:
            w = r.slow
            moving = f", moving at {w['moving']} fps (the bench publishes one layer)" if w["moving"] else ""
            print(f"  {r.path} N={r.size}: the viewer behind the shaped link ({r.slow_kbit} kbit/s tbf): heard "
                  f"{w['heard']}/{r.size - 1}, audio gaps > 200 ms: {w['gaps']} "
                  f"(longest {w['longest_gap_ms']:.0f} ms); the speaker's video {w['speaker_fps']:.1f} fps"
                  f"{'' if w['speaker'] else ' (the server named no speaker)'}; "
                  f"the other {r.size - 2} tiles: {w['paused']} paused{moving}; "
                  f"downlink {w['kbps']:.0f} kbps; its REMB median {w['estimate_kbps']:.0f} kbps")
    for r in rows:
        verdict = "every participant published and every stream arrived" if r.complete else \
            f"INCOMPLETE ({r.missing}): the figures above do not describe a full room"
        print(f"  {r.path} N={r.size}: published {r.published}, streams {r.streams_seen}: {verdict}")
    before: dict[int, Row] = {}  # each port room against the forwarding room run just before it
    for r in rows:
        if r.path == "forward":
            before[r.size] = r
        elif r.path == "port" and r.size in before:
            print(f"N={r.size}: one media port, {r.us_per_packet:.1f} us of server CPU per forwarded packet against "
                  f"{before[r.size].us_per_packet:.1f} with a port per connection "
                  f"({r.us_per_packet / before[r.size].us_per_packet:.2f}x); {r.port_dropped:.0f} datagrams dropped")
    forward = {r.size: r for r in rows if r.path == "forward"}
    for r in rows:
        if r.path == "transcode" and r.size in forward and forward[r.size].cores > 0:
            print(f"N={r.size}: the default decode/re-encode path used {r.cores / forward[r.size].cores:.1f}x "
                  f"the server CPU of forwarding (and delivered {r.fps_median:.1f} vs "
                  f"{forward[r.size].fps_median:.1f} fps median)")


SERVER_ADDRESS, VIEWER_ADDRESS = "10.99.0.1", "10.99.0.2"
JANUS_ROOM = 1234


async def in_namespaces(kbit: int) -> int:
    """Run this benchmark again inside a network namespace (the servers and every participant),
    joined by a veth pair to a second namespace; nothing is sent anywhere else, and the
    namespaces are removed at the end. With `kbit` (--slow-viewer) the last viewer runs in that
    second namespace and the server's end of the pair gets a tbf qdisc of `kbit`: that viewer's
    downlink is `kbit` kbit/s."""
    server_ns, viewer_ns = f"plbench{os.getpid()}s", f"plbench{os.getpid()}v"
    server_end, viewer_end = f"plb{os.getpid()}s", f"plb{os.getpid()}v"
    setup = [
        ["ip", "netns", "add", server_ns], ["ip", "netns", "add", viewer_ns],
        ["ip", "link", "add", server_end, "type", "veth", "peer", "name", viewer_end],
        ["ip", "link", "set", server_end, "netns", server_ns], ["ip", "link", "set", viewer_end, "netns", viewer_ns],
        ["ip", "-n", server_ns, "addr", "add", f"{SERVER_ADDRESS}/24", "dev", server_end],
        ["ip", "-n", viewer_ns, "addr", "add", f"{VIEWER_ADDRESS}/24", "dev", viewer_end],
        *[["ip", "-n", ns, "link", "set", dev, "up"]
          for ns, dev in ((server_ns, "lo"), (server_ns, server_end), (viewer_ns, "lo"), (viewer_ns, viewer_end))],
    ]
    shaping = ["tbf", "rate", f"{kbit}kbit", "burst", "32kbit", "latency", "400ms"]
    if kbit:
        setup.append(["tc", "-n", server_ns, "qdisc", "add", "dev", server_end, "root", *shaping])
    try:
        for command in setup:
            done = await asyncio.create_subprocess_exec(*command)
            if await done.wait():
                print(f"could not set up the network namespaces ({' '.join(command)}): run as root")
                return 1
        where = f"{viewer_ns} (one viewer, {VIEWER_ADDRESS}); {' '.join(shaping)} on the server's end" if kbit \
            else f"{viewer_ns} (the veth pair's other end, {VIEWER_ADDRESS}, unused)"
        print(f"network namespaces {server_ns} (servers and participants, {SERVER_ADDRESS}) and {where}", flush=True)
        inner = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", server_ns, sys.executable, "-m", "bench.media", *sys.argv[1:],
            "--inside", f"{server_ns},{viewer_ns}")
        return await inner.wait()
    finally:
        for ns in (server_ns, viewer_ns):
            done = await asyncio.create_subprocess_exec("ip", "netns", "del", ns, stderr=asyncio.subprocess.DEVNULL)
            await done.wait()


def side_by_side(pairs: list[tuple[int, dict[str, Row]]], janus_loops: int) -> None:
    """Each pair's rows, Porchlight against Janus, and per N the medians over the complete pairs
    with the issue's goals. A side that did not get every stream is shown, never averaged in."""
    print()
    print(f"Porchlight (forwarder) against Janus 1.1.2 (VideoRoom, "
          f"{f'event_loops = {janus_loops}' if janus_loops else 'event_loops unset: a thread per handle'}), "
          "the same clients, alternating. Packets sent: "
          "Porchlight's porchlight_media_packets_out_total;\n"
          "Janus's Admin API (handle_info of every handle: webrtc.media[mid].stats.out.packets, audio and video)")
    print(f"{'N':>3} {'pair':>4} {'side':<10} {'cores':>6} {'us/packet':>9} {'pkts/s out':>10} {'fwd':>5} "
          f"{'p50 ms':>7} {'p95 ms':>7} {'fps min':>7} {'fps med':>7} {'RSS MB':>7} {'all MB':>6} {'published':>9} "
          f"{'streams':>8} {'udp drops':>9}  complete")
    for pair, (_size, sides) in enumerate(pairs, 1):
        for r in sides.values():
            print(f"{r.size:>3} {pair:>4} {SIDE_NAMES[r.path]:<10} {r.cores:>6.3f} {r.us_per_packet:>9.1f} "
                  f"{r.packets_per_s:>10.0f} {r.forwarded:>5.2f} {r.latency_p50:>7.1f} {r.latency_p95:>7.1f} "
                  f"{r.fps_min:>7.1f} {r.fps_median:>7.1f} {r.rss_mb:>7.0f} {r.all_rss_mb:>6.0f} {r.published:>9} "
                  f"{r.streams_seen:>8} "
                  f"{r.udp_dropped:>9}  "
                  f"{'yes' if r.complete else f'NO ({r.missing}): not counted'}")
        p, j, b = sides.get("forward"), sides.get("janus"), sides.get("before")
        if p and b:
            print(f"{'':>3} {'':>4} {'P/before':<10} {ratio(p.cores, b.cores):>6} "
                  f"{ratio(p.us_per_packet, b.us_per_packet):>9} "
                  f"{ratio(p.packets_per_s, b.packets_per_s):>10} {'':>5} {ratio(p.latency_p50, b.latency_p50):>7} "
                  f"{ratio(p.latency_p95, b.latency_p95):>7} {'':>7} {'':>7} {ratio(p.rss_mb, b.rss_mb):>7} "
                  f"{ratio(p.all_rss_mb, b.all_rss_mb):>6}"
                  f"{'' if p.complete and b.complete else '  (a side incomplete)'}")
        if p and j:
            print(f"{'':>3} {'':>4} {'P/J':<10} {ratio(p.cores, j.cores):>6} "
                  f"{ratio(p.us_per_packet, j.us_per_packet):>9} "
                  f"{ratio(p.packets_per_s, j.packets_per_s):>10} {'':>5} {ratio(p.latency_p50, j.latency_p50):>7} "
                  f"{ratio(p.latency_p95, j.latency_p95):>7} {'':>7} {'':>7} {ratio(p.rss_mb, j.rss_mb):>7} "
                  f"{ratio(p.all_rss_mb, j.all_rss_mb):>6}"
                  f"{'' if p.complete and j.complete else '  (a side incomplete: pair not counted)'}")
    print()
    print("Per N, medians over the complete pairs (goals: CPU per packet <= 0.8x Janus's at N=12, "
          "latency p50 <= Janus's + 5 ms, RSS <= 2x Janus's)")
    for size in sorted({k for k, _ in pairs}):
        complete = [sides for k, sides in pairs if k == size
                    and all(r.complete for r in sides.values()) and {"forward", "janus"} <= sides.keys()]
        total = sum(1 for k, _ in pairs if k == size)
        against_before = [sides["forward"].us_per_packet / sides["before"].us_per_packet for k, sides in pairs
                          if k == size and {"forward", "before"} <= sides.keys()
                          and sides["forward"].complete and sides["before"].complete]
        if against_before:
            print(f"  N={size}: CPU per forwarded packet against the before side: "
                  f"{statistics.median(against_before):.2f}x ({len(against_before)} complete pairs)")
        if not complete:
            print(f"  N={size}: no complete pair of {total}: no comparison")
            continue

        def median(field: str, side: str, rows: list[dict[str, Row]] = complete) -> float:
            return statistics.median(getattr(sides[side], field) for sides in rows)

        cpu = statistics.median(s["forward"].us_per_packet / s["janus"].us_per_packet for s in complete)
        rss = statistics.median(s["forward"].rss_mb / s["janus"].rss_mb for s in complete)
        all_rss = statistics.median(s["forward"].all_rss_mb / s["janus"].all_rss_mb for s in complete)
        p50 = statistics.median(s["forward"].latency_p50 - s["janus"].latency_p50 for s in complete)
        spread = [s["forward"].us_per_packet / s["janus"].us_per_packet for s in complete]
        print(f"  N={size} ({len(complete)} of {total} pairs complete): CPU per forwarded packet "
              f"{median('us_per_packet', 'forward'):.1f} us against {median('us_per_packet', 'janus'):.1f} us: "
              f"{cpu:.2f}x (pairs {min(spread):.2f}-{max(spread):.2f})"
              f"{goal(cpu <= 0.8, '<= 0.8x') if size == 12 else ''}")
        print(f"        latency p50 {median('latency_p50', 'forward'):.1f} ms against "
              f"{median('latency_p50', 'janus'):.1f} ms ({p50:+.1f} ms{goal(p50 <= 5, '<= +5 ms')}); "
              f"p95 {median('latency_p95', 'forward'):.1f} against {median('latency_p95', 'janus'):.1f} ms; "
              f"fps median {median('fps_median', 'forward'):.1f} against {median('fps_median', 'janus'):.1f}, "
              f"min {median('fps_min', 'forward'):.1f} against {median('fps_min', 'janus'):.1f}")
        print(f"        RSS {median('rss_mb', 'forward'):.0f} MB against {median('rss_mb', 'janus'):.0f} MB: "
              f"{rss:.2f}x{goal(rss <= 2, '<= 2x')}; with the delivery process and the embedded Redis "
              f"{median('all_rss_mb', 'forward'):.0f} MB: {all_rss:.2f}x")


SIDE_NAMES = {"forward": "porchlight", "before": "before", "janus": "janus"}


def goal(met: bool, what: str) -> str:
    return f"; goal {what}: {'met' if met else 'NOT met'}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and not math.isnan(a) and not math.isnan(b) else "n/a"


async def compare(frames_file: Path, args: argparse.Namespace) -> None:
    """--sides: the rooms of each size through each side in turn, the order flipped every repeat."""
    sides = [{"porchlight": "forward", "before": "before", "janus": "janus"}[side] for side in args.sides.split(",")]
    pairs: list[tuple[int, dict[str, Row]]] = []
    for k in range(args.repeat):
        for size in (int(n) for n in args.sizes.split(",") if n):
            pair: dict[str, Row] = {}
            for side in sides if k % 2 == 0 else sides[::-1]:
                print(f"  {SIDE_NAMES[side]} room of {size} (pair {len(pairs) + 1}; load average "
                      f"{os.getloadavg()[0]:.2f})...", flush=True)
                try:
                    row = await (run_janus_room(size, frames_file, args) if side == "janus"
                                 else run_room(side, size, frames_file, args))
                except KeyboardInterrupt:
                    side_by_side(pairs, args.janus_event_loops)
                    raise
                pair[side] = row
                report([row])
            pairs.append((size, dict(sorted(pair.items()))))
    side_by_side(pairs, args.janus_event_loops)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="4,8,12")
    parser.add_argument("--transcode-sizes", default="4,8")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--profile", type=int, default=0, help="profile the server in the room of this size")
    parser.add_argument("--phone-tiles", type=int, default=0,
                        help="one viewer is a phone whose grid shows this many tiles (a view frame)")
    parser.add_argument("--phone-tile", default="360x270", help="the phone's tile size in device pixels")
    parser.add_argument("--simulcast", action="store_true",
                        help="participants publish three VP8 layers by RID, as browsers do (bench/simulcast.py)")
    parser.add_argument("--layer-kbps", default="", metavar="150,200,1200",
                        help="with --simulcast: each layer's bitrate (default: web/static/media.js's caps)")
    parser.add_argument("--laptop-tile", default="640x480",
                        help="with --simulcast: the tile size of the viewers that show everyone, device pixels; "
                             "hidden: they show nobody (sound only), to measure the phone without their load")
    parser.add_argument("--media-port", type=int, default=0,
                        help="also run each forwarding room with PORCHLIGHT_MEDIA_PORT set to this")
    parser.add_argument("--slow-viewer", type=int, default=0, metavar="KBIT",
                        help="one viewer behind a link of this many kbit/s (tbf; network namespaces, root)")
    parser.add_argument("--sides", default="", metavar="porchlight,janus",
                        help="the same rooms through Porchlight and Janus's VideoRoom, alternating (root: "
                             "network namespaces; Debian's janus package)")
    parser.add_argument("--repeat", type=int, default=1, help="with --sides: pairs per size")
    parser.add_argument("--listeners", action="store_true",
                        help="everyone but the first participant is silent under Opus DTX (a frame per 400 ms), "
                             "as in a group where one person speaks")
    parser.add_argument("--clients-nice", type=int, default=0, metavar="N",
                        help="run the participants at this niceness, so the server (either side) gets the CPU "
                             "it would have with the participants on other machines")
    parser.add_argument("--before", default="", metavar="DIR", help="with --sides ...,before: that checkout's server")
    parser.add_argument("--janus-event-loops", type=int, default=0, metavar="N",
                        help="with --sides: Janus's event_loops (default: unset, a loop thread per handle)")
    parser.add_argument("--keep", default="", metavar="DIR",
                        help="copy each room's participant reports and logs and server log into DIR")
    parser.add_argument("--workers-compare", default="", metavar="1,2",
                        help="host --rooms rooms of each --sizes at once with each PORCHLIGHT_WORKERS in turn")
    parser.add_argument("--rooms", type=int, default=2, help="with --workers-compare: rooms at once")
    parser.add_argument("--inside", default="", help=argparse.SUPPRESS)  # run in the namespaces: their names
    args = parser.parse_args()
    if args.sides:
        unknown = set(args.sides.split(",")) - {"porchlight", "before", "janus"}
        if unknown or args.slow_viewer or args.media_port or args.phone_tiles or args.simulcast:
            parser.error("--sides takes porchlight, before and/or janus, without --slow-viewer, --media-port, "
                         "--phone-tiles, --simulcast")
        if "before" in args.sides.split(","):
            if not args.before:
                parser.error("--sides ...,before needs --before DIR (a checkout of the earlier commit)")
            args.before_path = before_path(Path(args.before), without_hiredis=False)
        if "janus" in args.sides.split(",") and not janus.installed():
            print(janus.INSTALL, file=sys.stderr)
            sys.exit(2)
    if args.simulcast and (args.slow_viewer or args.workers_compare or args.transcode_sizes):
        parser.error("--simulcast runs forwarding rooms alone: with --transcode-sizes '', "
                     "without --slow-viewer or --workers-compare")
    if (args.slow_viewer or args.sides) and not args.inside:
        sys.exit(await in_namespaces(args.slow_viewer))
    with tempfile.TemporaryDirectory() as tmp:
        frames_file = Path(tmp) / "frames.bin"
        # Behind a shaped link the publishers stand in for a simulcast's smallest layer: one layer
        # the size browsers send as their lowest (the bench does not publish simulcast).
        size = (320, 180, 150_000) if args.slow_viewer else (640, 360, 500_000)
        encode_tone(frames_file.with_suffix(".opus"))
        if args.simulcast:  # the layers, and the top one where the single-layer clip would be
            rates = [(rid, w, h, encode_loop(layer_file(frames_file, rid), w, h, rate))
                     for rid, w, h, rate in layer_sizes(args.layer_kbps)]
            shutil.copy(layer_file(frames_file, rates[-1][0]), frames_file)
            print("video: simulcast, " + ", ".join(f"{rid} {w}x{h} {rate / 1000:.0f} kbps" for rid, w, h, rate in rates)
                  + f" (VP8 at {FPS} fps, pre-encoded loops of {LOOP} frames); {os.cpu_count()} CPUs", flush=True)
        else:
            bitrate = encode_loop(frames_file, *size)
            print(f"video: {size[0]}x{size[1]} VP8 at {FPS} fps, {bitrate / 1000:.0f} kbps "
                  f"(pre-encoded loop of {LOOP} frames); "
                  f"{os.cpu_count()} CPUs", flush=True)
        if args.sides:
            await compare(frames_file, args)
            return
        if args.workers_compare:
            from bench import media_workers  # it builds on this module's rooms

            results = []
            for size in (int(n) for n in args.sizes.split(",") if n):
                for count in (int(n) for n in args.workers_compare.split(",") if n):
                    print(f"  {args.rooms} rooms of {size} with PORCHLIGHT_WORKERS={count} "
                          f"(load average {os.getloadavg()[0]:.2f})...", flush=True)
                    results.append(await media_workers.run(count, args.rooms, size, frames_file, args))
                    media_workers.report(results[-1:], args.rooms)
            media_workers.report(results, args.rooms)
            return
        rows = []
        plan = [(path, int(n)) for n in args.sizes.split(",") if n
                for path in ("forward", "port")[:2 if args.media_port else 1]]
        plan += [("transcode", int(n)) for n in args.transcode_sizes.split(",") if n]
        for path, size in plan:
            print(f"  {path} room of {size}...", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                rows.append(await run_room(path, size, frames_file, args))
                report(rows[-1:])
        report(rows)


if __name__ == "__main__":
    asyncio.run(main())
