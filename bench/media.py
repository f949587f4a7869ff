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
- server RSS at the end of the window;
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

With --phone-tiles N one viewer is a phone whose grid shows N of the others (a `view` frame):
the downlink of that viewer and of those that show everyone are printed (bytes on the wire,
IP and UDP headers included).
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

from bench.media_client import PROBE_DECODES
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
    """Encode LOOP frames of a moving, slightly noisy picture to VP8; returns the bitrate."""
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.bit_rate = width, height, "yuv420p", bitrate
    ctx.framerate = fractions.Fraction(FPS, 1)
    ctx.time_base = fractions.Fraction(1, FPS)
    ctx.gop_size = LOOP
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    rng = random.Random(1)
    noise = bytes(rng.randrange(10) for _ in range(width * height * 2))
    ramp = bytes(range(256)) * (width // 256 + 2)
    frames: list[bytes] = []
    for k in range(LOOP):
        frame = av.VideoFrame(width, height, "yuv420p")
        luma = b"".join(ramp[(r + 8 * k) % 256:(r + 8 * k) % 256 + width] for r in range(height))
        off = (k * 997) % (width * height)
        frame.planes[0].update(bytes((a + b) & 0xFF for a, b in zip(luma, noise[off:off + len(luma)], strict=True)))
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * (plane.line_size * (height // 2)))
        frame.pts = k
        frames += [bytes(p) for p in ctx.encode(frame)]
    frames += [bytes(p) for p in ctx.encode(None)]
    path.write_bytes(b"".join(struct.pack("!I", len(f)) + f for f in frames))
    return sum(map(len, frames)) * 8 / (len(frames) / FPS)


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
    fps_min: float
    fps_median: float
    decoded_fps_min: float
    latency_p50: float
    latency_p95: float
    streams_seen: str
    published: str
    complete: bool  # every participant published and every stream arrived
    client_cores: float
    downlink_kbps: float  # median over the viewers that show everyone (not the phone, not the probe)
    phone_kbps: float  # the phone viewer's (--phone-tiles), NaN without one
    phone_fps: float  # the phone's lowest frames per second over the tiles it shows
    port_dropped: float  # datagrams PORCHLIGHT_MEDIA_PORT dropped (path "port" only)
    slow: dict[str, Any] | None = None  # --slow-viewer: what the viewer behind the shaped link got
    slow_kbit: int = 0


async def run_room(path: str, size: int, frames_file: Path, args: argparse.Namespace) -> Row:
    command = [sys.executable, "-m", "bench.transcode"] if path == "transcode" else porchlight_command()
    extra_env = {"PORCHLIGHT_MEDIA_PORT": str(args.media_port)} if path == "port" else {}
    with tempfile.TemporaryDirectory(prefix="porchlight-media-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        netns = args.inside.split(",") if args.inside else None  # (the server's, the slow viewer's)
        if netns:
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
                offsets_file = Path(tmp) / "offsets.json"
                offsets_file.write_text(json.dumps(offsets))
                session = await post(http, base, facilitator, f"/groups/{group['id']}/sessions", {}, 201)
                t0 = time.time() + 1
                window = (t0 + args.warmup + size * 0.5, t0 + args.warmup + size * 0.5 + args.window)
                outs = [Path(tmp) / f"client{i}.json" for i in range(size)]
                slow = size - 1 if netns else -1  # the viewer behind the shaped link
                clients = [
                    await asyncio.create_subprocess_exec(
                        *(["ip", "netns", "exec", netns[1]] if netns and i == slow else []),
                        sys.executable, "-m", "bench.media_client", base, token, str(frames_file), str(t0),
                        str(window[0]), str(window[1]), str(out), "--offsets", str(offsets_file),
                        "--offset", str(list(offsets.values())[i]), *(["--decode"] if i == 0 else []),
                        *(["--view", str(args.phone_tiles), "--tile", args.phone_tile]
                          if i == 1 and args.phone_tiles else []),
                        *(["--speaker"] if netns and i == 0 else []), *(["--remb"] if i == slow else []),
                        stdout=asyncio.subprocess.DEVNULL, stderr=(Path(tmp) / f"client{i}.log").open("w"))
                    for i, (token, out) in enumerate(zip(tokens, outs, strict=True))
                ]
                async with asyncio.timeout(120):
                    while True:
                        described = await (await http.get(
                            f"{base}/api/v1/sessions/{session['id']}", headers=facilitator.headers())).json()
                        if len(described["waiting"]) == size:
                            break
                        await asyncio.sleep(0.2)
                await post(http, base, facilitator, f"/sessions/{session['id']}/admit", {"all": True})
                await asyncio.sleep(max(0.0, window[0] - time.time()))
                cpu0, (packets0, in0) = cpu_seconds(server.proc.pid), await _packets(http, base)
                profile = None
                if args.profile == size and path == "forward":
                    profile = await asyncio.create_subprocess_exec(
                        "py-spy", "record", "--format", "raw", "-r", "50", "-d", str(int(args.window)),
                        "-o", str(Path(tmp) / "profile.txt"), "-p", str(server.proc.pid),
                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
                await asyncio.sleep(max(0.0, window[1] - time.time()))
                cpu1, (packets1, in1) = cpu_seconds(server.proc.pid), await _packets(http, base)
                dropped = (await server_metrics(http, base)).get("porchlight_media_port_dropped_total", 0.0)
                rss = proc_kb(server.proc.pid, "VmRSS") / 1024
                for client in clients:
                    await client.wait()
                if profile is not None:
                    await profile.wait()
                    print_profile(Path(tmp) / "profile.txt")
        finally:
            await stop_server(server)
        results = [json.loads(out.read_text()) for out in outs if out.exists()]
        if len(results) < size:
            print((Path(tmp) / "client1.log").read_text()[-3000:])
    span = window[1] - window[0]
    fps, latency, seen = [], [], 0
    slow_result = results.pop() if args.inside and len(results) == size else None
    for result in results:
        for stream in result["streams"].values():
            fps.append(stream["frames"] / span)
            latency += stream["latency_ms"]
            seen += stream["frames"] > 0
    decoded = [n / span for n in results[0]["decoded"].values()] if results else []
    published = sum(1 for r in results + ([slow_result] if slow_result else []) if r.get("published"))
    expected_streams = (size - (1 if args.inside else 0)) * (size - 1) - min(PROBE_DECODES, size - 1)
    phones = [r for r in results if r.get("view")]
    expected_streams -= sum(max(0, size - 1 - r["view"]) for r in phones)  # a phone shows only a few
    everyone = [r for r in results[1:] if not r.get("view")]  # the probe's socket is not counted
    kbps = [r["downlink_bytes"] * 8 / span / 1000 for r in everyone]
    phone_fps = [stream["frames"] / span for r in phones for stream in r["streams"].values() if stream["frames"]]
    refused = sum(r.get("refusals", 0) for r in results)
    cores = (cpu1 - cpu0) / span
    packets = packets1 - packets0
    slow = slow_summary(slow_result, span, size, results) if args.inside else None
    return Row(
        slow=slow, slow_kbit=args.slow_viewer,
        path=path, size=size, cores=cores, us_per_packet=(cpu1 - cpu0) / packets * 1e6 if packets else float("nan"),
        packets_per_s=packets / span, rss_mb=rss,
        forwarded=packets / ((in1 - in0) * (size - 1)) if in1 > in0 else float("nan"),
        fps_min=min(fps, default=0.0), fps_median=statistics.median(fps) if fps else 0.0,
        decoded_fps_min=min(decoded, default=0.0),
        latency_p50=percentile(latency, 50), latency_p95=percentile(latency, 95),
        streams_seen=f"{seen}/{expected_streams}",
        published=f"{published}/{size}" + (f" ({refused} offers retried)" if refused else ""),
        complete=published == size and seen == expected_streams and (slow is None or slow["heard"] == size - 1),
        client_cores=sum(r["cpu_s"] for r in results) / (window[1] - t0 + 2),
        downlink_kbps=statistics.median(kbps) if kbps else float("nan"),
        phone_kbps=phones[0]["downlink_bytes"] * 8 / span / 1000 if phones else float("nan"),
        phone_fps=min(phone_fps, default=float("nan")),
        port_dropped=dropped if path == "port" else float("nan"),
    )


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
            "INCOMPLETE: the figures above do not describe a full room"
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


async def shaped(kbit: int) -> int:
    """Run this benchmark again inside a network namespace (the server and every participant but
    one), with the last viewer in a second namespace whose only way in is a veth pair; the server's
    end of it gets a tbf qdisc of `kbit`, so that viewer's downlink is `kbit` kbit/s. Nothing is
    sent anywhere else; the namespaces are removed at the end."""
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
        ["tc", "-n", server_ns, "qdisc", "add", "dev", server_end, "root", "tbf", "rate", f"{kbit}kbit",
         "burst", "32kbit", "latency", "400ms"],
    ]
    try:
        for command in setup:
            done = await asyncio.create_subprocess_exec(*command)
            if await done.wait():
                print(f"could not set up the network namespaces ({' '.join(command)}): run as root")
                return 1
        print(f"network namespaces {server_ns} (server, {SERVER_ADDRESS}) and {viewer_ns} (one viewer, "
              f"{VIEWER_ADDRESS}); tbf rate {kbit}kbit burst 32kbit latency 400ms on the server's end", flush=True)
        inner = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", server_ns, sys.executable, "-m", "bench.media", *sys.argv[1:],
            "--inside", f"{server_ns},{viewer_ns}")
        return await inner.wait()
    finally:
        for ns in (server_ns, viewer_ns):
            done = await asyncio.create_subprocess_exec("ip", "netns", "del", ns, stderr=asyncio.subprocess.DEVNULL)
            await done.wait()


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
    parser.add_argument("--media-port", type=int, default=0,
                        help="also run each forwarding room with PORCHLIGHT_MEDIA_PORT set to this")
    parser.add_argument("--slow-viewer", type=int, default=0, metavar="KBIT",
                        help="one viewer behind a link of this many kbit/s (tbf; network namespaces, root)")
    parser.add_argument("--inside", default="", help=argparse.SUPPRESS)  # run by --slow-viewer: the namespaces
    args = parser.parse_args()
    if args.slow_viewer and not args.inside:
        sys.exit(await shaped(args.slow_viewer))
    with tempfile.TemporaryDirectory() as tmp:
        frames_file = Path(tmp) / "frames.bin"
        # Behind a shaped link the publishers stand in for a simulcast's smallest layer: one layer
        # the size browsers send as their lowest (the bench does not publish simulcast).
        size = (320, 180, 150_000) if args.slow_viewer else (640, 360, 500_000)
        bitrate = encode_loop(frames_file, *size)
        encode_tone(frames_file.with_suffix(".opus"))
        print(f"video: {size[0]}x{size[1]} VP8 at {FPS} fps, {bitrate / 1000:.0f} kbps "
              f"(pre-encoded loop of {LOOP} frames); "
              f"{os.cpu_count()} CPUs", flush=True)
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
