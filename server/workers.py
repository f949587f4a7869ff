"""PORCHLIGHT_WORKERS=N: N `porchlight serve` processes behind one port on one machine.

The supervisor binds the port once and hands the listening socket to each worker (the kernel
gives each new connection to one of them), starts the embedded Redis they share when no
PORCHLIGHT_REDIS_URL is given, and runs the demo's set-up once. Each worker is an ordinary
process of the deployment (lobby/cluster.py): any of them serves any request. A worker that
dies is started again; SIGTERM and SIGINT are passed on to every worker (each drains as a lone
process would), and the supervisor exits when they all have.

With PORCHLIGHT_DELIVERY=process the webhooks are sent by one delivery process beside the workers
(`DeliveryChild`, server/deliver.py), started and restarted here like them and stopped after
them, so that sessions ending during the drain still have their records sent; the workers are
told PORCHLIGHT_DELIVERY=external and send none.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

from server.settings import Settings
from server.store.connection import Redis, connect
from server.store.embedded import EmbeddedRedis

LISTEN_FD = "PORCHLIGHT_LISTEN_FD"  # set for workers only: the supervisor's listening socket
QUICK_FAILURES = 3
QUICK_FAILURE_SECONDS = 10.0
RESTART_PAUSE = 1.0  # seconds before a worker that died is started again
RESTART_PAUSE_MAX = 30.0  # the delivery process is never given up on; its pause grows to this
DELIVERY_STOP_SECONDS = 8.0  # its own stop takes at most server.deliver.STOP_SECONDS; then SIGKILL


class DeliveryChild:
    """The delivery process (`porchlight deliver`) of a `porchlight serve`: started again when it
    dies, stopped when asked. It stops when its standard input closes, which also happens when
    this process dies without asking (even by SIGKILL): it never outlives its server. Signals
    sent to the whole process group (Ctrl-C, a service manager's SIGTERM) leave it to this
    process, which stops it once the serving is done."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {k: v for k, v in env.items() if k != LISTEN_FD}
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.failures = 0  # exits in a row soon after starting
        self.restart_at: float | None = None
        self.stopping = False

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "server", "deliver", "--supervised"], env=self.env,
                                        stdin=subprocess.PIPE)
        self.started = time.monotonic()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def check(self) -> None:
        """Never blocks: notes that the process died, and starts it again once its pause is over
        (1 s, doubling while it keeps dying within QUICK_FAILURE_SECONDS of starting)."""
        if self.stopping or self.process is None or self.process.poll() is None:
            return
        now = time.monotonic()
        if self.restart_at is None:
            quick = now - self.started < QUICK_FAILURE_SECONDS
            self.failures = self.failures + 1 if quick else 0
            pause = min(RESTART_PAUSE_MAX, RESTART_PAUSE * 2 ** self.failures)
            print(f"porchlight: the delivery process exited ({self.process.returncode}); starting it again "
                  f"in {pause:g} s", file=sys.stderr, flush=True)
            self.restart_at = now + pause
        elif now >= self.restart_at:
            self.restart_at = None
            self.start()

    def stop(self) -> None:
        """Close its standard input and wait for it (it finishes the requests in flight), then kill."""
        self.stopping = True
        process = self.process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(DELIVERY_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def inherited_socket() -> socket.socket | None:
    """In a worker, the listening socket the supervisor passed down."""
    fd = os.environ.get(LISTEN_FD)
    if not fd:
        return None
    sock = socket.socket(fileno=int(fd))
    sock.setblocking(False)
    return sock


def supervise(settings: Settings, sock: socket.socket,
              before: Callable[[Redis, Settings], Awaitable[str]] | None = None) -> int:
    embedded: EmbeddedRedis | None = None
    env = dict(os.environ)
    if not settings.redis_url:
        embedded = EmbeddedRedis(settings.data_dir)
        if embedded.running_elsewhere():
            raise SystemExit(f"porchlight: another server already runs the embedded Redis of {settings.data_dir}; "
                             "stop it or use another PORCHLIGHT_DATA_DIR")
        embedded.start()
        env["PORCHLIGHT_REDIS_URL"] = embedded.url
    delivery = DeliveryChild(env) if settings.delivery == "process" else None
    env.update({"PORCHLIGHT_WORKERS": "1", LISTEN_FD: str(sock.fileno()), "PORCHLIGHT_PORT": str(settings.port),
                "PORCHLIGHT_PUBLIC_URL": settings.public_url})
    if delivery is not None:
        env["PORCHLIGHT_DELIVERY"] = "external"
    try:
        banner = ""
        if before is not None:
            banner = asyncio.run(_once(before, settings.replace(
                redis_url=env.get("PORCHLIGHT_REDIS_URL", settings.redis_url))))
        print(f"Porchlight: {settings.workers} workers at {settings.public_url}.", flush=True)
        if banner:  # the demo's logins and links
            print(banner, flush=True)
        if delivery is not None:
            delivery.start()
        return _run(settings.workers, env, sock, settings.media_port, delivery)
    finally:
        if delivery is not None:
            delivery.stop()
        if embedded is not None:
            embedded.stop()


async def _once(before: Callable[[Redis, Settings], Awaitable[str]], settings: Settings) -> str:
    assert settings.redis_url is not None
    client = connect(settings.redis_url)
    try:
        return await before(client, settings)
    finally:
        await client.aclose()


def _run(count: int, env: dict[str, str], sock: socket.socket, media_port: int = 0,
         delivery: DeliveryChild | None = None) -> int:
    command = [sys.executable, "-m", "server", "serve"]
    stopping: list[int] = []

    def start(i: int) -> tuple[subprocess.Popen[bytes], float]:
        # PORCHLIGHT_MEDIA_PORT: one UDP port per worker (a socket's packets go to one process).
        own = {**env, "PORCHLIGHT_MEDIA_PORT": str(media_port + i)} if media_port else env
        return subprocess.Popen(command, env=own, pass_fds=(sock.fileno(),)), time.monotonic()

    workers = [start(i) for i in range(count)]
    quick_failures = 0  # workers in a row that died soon after starting: a setting is wrong, not bad luck

    def stop(sig: int, frame: object) -> None:
        stopping.append(sig)
        for worker, _ in workers:
            if worker.poll() is None:
                worker.send_signal(sig)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        running = [w for w, _ in workers if w.poll() is None]
        if stopping and not running:
            return 0  # the delivery process is stopped by the caller, after the workers
        if delivery is not None and not stopping:
            delivery.check()
        if not stopping:
            for i, (worker, started) in enumerate(workers):
                if worker.poll() is None:
                    continue
                quick_failures = quick_failures + 1 if time.monotonic() - started < QUICK_FAILURE_SECONDS else 0
                if quick_failures >= QUICK_FAILURES:
                    print(f"porchlight: workers keep exiting at start ({worker.returncode}); stopping",
                          file=sys.stderr, flush=True)
                    stop(signal.SIGTERM, None)
                    for other, _ in workers:
                        other.wait()
                    return 1
                print(f"porchlight: worker {i + 1} exited ({worker.returncode}); starting it again",
                      file=sys.stderr, flush=True)
                time.sleep(RESTART_PAUSE)
                if not stopping:
                    workers[i] = start(i)
        time.sleep(0.2)
