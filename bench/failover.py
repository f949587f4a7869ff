"""The process hosting a group killed with SIGKILL: how long until everyone has media again.

Each trial starts a fresh deployment: a real redis-server and two `porchlight serve` processes
(A and B) with `PORCHLIGHT_NODE_TIMEOUT_SECONDS` (default 2). The session is opened through B,
so B hosts it; a facilitator and `--patients` patients, all with sockets on A, admitted and
publishing real aiortc audio and video, each seeing every other. Then B is killed and, for
every participant, the time from the kill until it decodes video and audio from every other
participant again (after its `media_reset`) is taken. The session is then ended and what was
recorded is counted: `left` events of the survivors (must be 0: they never left), and billing
records delivered to a local receiver (must be one per patient, exactly once).

Printed, not asserted; p50/p95 over every participant of every trial. Goal (issue 10):
NODE_TIMEOUT + 3 s.

    python -m bench.failover [--trials 5] [--patients 5] [--node-timeout 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.waiting_room import percentile
from tests.conftest import RedisServer
from tests.test_scale_out import Deployment, Socket, _node_ids, clinic


async def receiver() -> tuple[web.AppRunner, str, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(json.loads(await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/hook", got


async def back_after(sock: Socket, others: list[str], killed_at: float) -> float:
    """Seconds from the kill until `sock` decodes every other participant again."""
    await sock.until("media_reset", timeout=60)
    assert sock.media is not None
    for pid in others:
        await sock.media.sees(pid, timeout=60)
    return time.monotonic() - killed_at


async def trial(workdir: Path, patients: int, node_timeout: float) -> dict[str, Any]:
    redis = RedisServer(workdir)
    redis.start()
    runner, hook, got = await receiver()
    d = Deployment(workdir, redis, webhook=hook, PORCHLIGHT_NODE_TIMEOUT_SECONDS=f"{node_timeout:g}",
                   PORCHLIGHT_LOG_LEVEL="ERROR")
    try:
        a, b = await d.start_node(), await d.start_node()
        c = await clinic(d, a, patients=patients)
        await _node_ids(d, a, 2)
        session = await d.call("dana", b, "POST", f"/groups/{c.group_id}/sessions", None, 201)
        socks = [await d.socket(a, {"type": "hello", "token": token}, media=True) for token in c.tokens]
        console = await d.socket(a, {"type": "hello", "session_id": session["id"]}, who="dana", media=True)
        for sock in socks:
            await sock.until("waiting")
        await d.call("dana", a, "POST", f"/sessions/{session['id']}/admit", {"all": True})
        everyone = [*socks, console]
        ids = [*c.patients, c.facilitator]
        for sock in socks:
            await sock.until("admitted")
        for sock in everyone:
            assert sock.media is not None
            await sock.media.publish()
        for sock, me in zip(everyone, ids, strict=True):
            assert sock.media is not None
            for pid in ids:
                if pid != me:
                    await sock.media.sees(pid, timeout=60)

        killed_at = time.monotonic()
        b.process.send_signal(signal.SIGKILL)
        await b.process.wait()
        times = await asyncio.gather(*(back_after(sock, [p for p in ids if p != me], killed_at)
                                       for sock, me in zip(everyone, ids, strict=True)))

        await d.call("dana", a, "POST", f"/sessions/{session['id']}/end")
        events = (await d.call("dana", a, "GET", f"/sessions/{session['id']}/events"))["events"]
        drops = sum(1 for e in events if e["type"] == "left" and e["reason"] != "session_end")
        async with asyncio.timeout(60):
            while len(got) < patients:
                await asyncio.sleep(0.1)
        await asyncio.sleep(2)  # a duplicate delivery would arrive within this (counted, not asserted)
        records = [g["data"]["patient_id"] for g in got]
        return {"times": times, "drops": drops, "records": len(records), "distinct": len(set(records))}
    finally:
        for node in d.nodes:
            node.output.clear()  # (Deployment.close prints what the processes said)
        await d.close()
        await runner.cleanup()
        assert redis.process is not None
        redis.process.kill()
        redis.process.wait()


async def amain(args: argparse.Namespace) -> None:
    times: list[float] = []
    participants = args.patients + 1
    print(f"{args.trials} trials, {participants} participants each (sockets on the survivor), "
          f"PORCHLIGHT_NODE_TIMEOUT_SECONDS={args.node_timeout:g}", flush=True)
    for i in range(args.trials):
        with tempfile.TemporaryDirectory(prefix="plfailover-") as tmp:
            out = await trial(Path(tmp), args.patients, args.node_timeout)
        times += out["times"]
        print(f"  trial {i + 1}: media back for all {participants} in {max(out['times']):.2f} s "
              f"(first {min(out['times']):.2f} s); survivors' drops recorded: {out['drops']}; "
              f"billing records: {out['records']} for {args.patients} patients ({out['distinct']} distinct)",
              flush=True)
    print(f"\nmedia back after the host's SIGKILL: p50 {percentile(times, 50):.2f} s, "
          f"p95 {percentile(times, 95):.2f} s, max {max(times):.2f} s "
          f"(goal: NODE_TIMEOUT + 3 s = {args.node_timeout + 3:g} s)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--patients", type=int, default=5)
    parser.add_argument("--node-timeout", type=float, default=2.0)
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
