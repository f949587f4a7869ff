"""A bare aiohttp WebSocket server, the yardstick for the waiting room's memory (issue 15: RSS
≤ 2× a bare aiohttp server holding the same sockets).

Each socket's first text frame is answered with a `waiting`-sized frame and the socket is then
held, with aiohttp's heartbeat as `porchlight serve` runs it; nothing else is kept. It prints
its port, then serves until stopped.

    python -m bench.bare_ws [--heartbeat 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket

from aiohttp import web

WAITING = json.dumps({"type": "waiting", "session_id": "ses_" + "x" * 16, "group": {"name": "Bench"},
                      "brand": {}, "waiting_since": "2026-01-01T00:00:00Z"})


async def serve(heartbeat: float) -> None:
    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse(heartbeat=heartbeat)
        await sock.prepare(request)
        async for msg in sock:
            if msg.type is web.WSMsgType.TEXT:
                await sock.send_str(WAITING)
        return sock

    app = web.Application()
    app.router.add_get("/api/v1/ws", ws)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    await web.SockSite(runner, listener).start()
    print(f"bare server on port {listener.getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_ws", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heartbeat", type=float, default=10.0)
    asyncio.run(serve(parser.parse_args().heartbeat))


if __name__ == "__main__":
    main()
