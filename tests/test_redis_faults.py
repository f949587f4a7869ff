"""Redis faults against real redis-server processes: hung (SIGSTOP), restarted, and a burst of
requests larger than the connection pool. One Redis per test where it is stopped or hung."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.clock import ManualClock
from server.settings import Settings, SettingsError
from server.store.connection import Redis, connect
from tests.conftest import RedisServer
from tests.helpers import Api

# Deadlines, generous against the mechanism (1 s health probe, 2 s command timeout, 2 s pool wait)
# so a loaded machine does not fail them, but far below the 15-20 s a hung Redis used to cost.
HEALTH_WITHIN = 3.0
API_503_WITHIN = 6.0
RECOVERS_WITHIN = 15.0


async def _api(aiohttp_client: Any, settings: Settings, redis: Redis) -> Api:
    clock = ManualClock()
    return Api(await aiohttp_client(create_app(settings, redis=redis, clock=clock)), redis, clock, settings)


def _signal(server: RedisServer, sig: signal.Signals) -> None:
    assert server.process is not None
    os.kill(server.process.pid, sig)


async def _status_within(client: TestClient, path: str, seconds: float) -> tuple[int, Any]:
    async with asyncio.timeout(seconds):
        resp = await client.get(path)
        return resp.status, await resp.json()


async def _until_ready(client: TestClient) -> None:
    async with asyncio.timeout(RECOVERS_WITHIN):
        while (await client.get("/healthz")).status != 200:
            await asyncio.sleep(0.05)


async def test_a_hung_redis_gives_health_in_seconds_and_api_calls_a_fast_503_then_recovers(
    aiohttp_client: Any, settings: Settings, own_redis: RedisServer
) -> None:
    redis = connect(own_redis.url)
    try:
        api = await _api(aiohttp_client, settings, redis)
        world = await api.world(patients=1)
        _signal(own_redis, signal.SIGSTOP)

        status, body = await _status_within(api.client, "/healthz", HEALTH_WITHIN)
        assert (status, body["redis"]) == (503, "down")
        status, body = await _status_within(api.client, "/readyz", HEALTH_WITHIN)
        assert status == 503
        status, body = await _status_within(api.client, "/livez", HEALTH_WITHIN)
        assert (status, body["status"]) == (200, "ok")  # the process itself is fine: nothing to restart
        async with asyncio.timeout(API_503_WITHIN):
            down = await api.post(world.admin, "/patients", {"display_name": "During the hang"}, expect=503)
        assert down["error"]["code"] == "unavailable"

        _signal(own_redis, signal.SIGCONT)
        await _until_ready(api.client)
        # Nothing was lost (the same process resumed): the admin's sign-in still works.
        await api.post(world.admin, "/patients", {"display_name": "After the hang"}, expect=201)
    finally:
        await redis.aclose()


async def test_a_hung_redis_replaced_by_a_restart_is_reconnected_to(
    aiohttp_client: Any, settings: Settings, own_redis: RedisServer
) -> None:
    redis = connect(own_redis.url)
    try:
        api = await _api(aiohttp_client, settings, redis)
        world = await api.world(patients=1)
        _signal(own_redis, signal.SIGSTOP)
        async with asyncio.timeout(API_503_WITHIN):
            await api.post(world.admin, "/patients", {"display_name": "During the hang"}, expect=503)

        assert own_redis.process is not None
        own_redis.process.kill()  # an operator's restart of a hung Redis: the pooled connections die with it
        own_redis.process.wait(10)
        own_redis.process = None
        status, _ = await _status_within(api.client, "/healthz", HEALTH_WITHIN)
        assert status == 503
        own_redis.start()  # the same port, empty (no AOF in tests)

        await _until_ready(api.client)
        again = await api.world(patients=1)
        await api.post(again.admin, "/patients", {"display_name": "After the restart"}, expect=201)
    finally:
        await redis.aclose()


BURST = 300
POOL = 10  # far below the burst's concurrency: the old fail-fast pool answered such bursts with 503s


async def test_a_burst_larger_than_the_pool_queues_and_a_facilitator_admits_in_the_middle_of_it(
    aiohttp_client: Any, settings: Settings, redis: Redis, redis_server: RedisServer
) -> None:
    # A long wait for a free connection: what is tested is that a burst queues rather than fails,
    # not how long a loaded test machine takes to work through it.
    small = connect(redis_server.url, pool_size=POOL, pool_timeout=10)
    try:
        api = await _api(aiohttp_client, settings, small)
        world = await api.world(patients=1)
        session_id = await api.open(world)
        patient = await api.patient(world.tokens[0])
        join_page = f"/j/{world.tokens[0]}"  # anonymous, and reads Redis several times

        # The test client's own session allows 100 connections at once; the burst needs all 300.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            async def get(path: str) -> tuple[str, int]:
                async with http.get(api.client.make_url(path)) as resp:
                    await resp.read()
                    return path, resp.status

            first = [asyncio.create_task(get("/healthz" if i % 2 else join_page)) for i in range(BURST // 2)]
            await asyncio.sleep(0)  # the first half is on its way when the facilitator acts
            admit = asyncio.create_task(api.post(world.facilitator, f"/sessions/{session_id}/admit",
                                                 {"patient_ids": [world.patients[0]["id"]]}))
            second = [asyncio.create_task(get("/healthz" if i % 2 else join_page)) for i in range(BURST // 2)]
            answers = await asyncio.gather(*first, *second)
            await admit  # 200, or it raises

        failed = [(path, status) for path, status in answers if status >= 500]
        assert failed == [], f"{len(failed)} of {BURST} failed: {failed[:5]}"
        assert all(status == 200 for path, status in answers if path == "/healthz")
        await patient.until("admitted")
    finally:
        await small.aclose()


def test_the_pool_and_socket_cap_settings_are_read_and_checked(tmp_path: Path) -> None:
    env = {"PORCHLIGHT_DATA_DIR": str(tmp_path)}
    defaults = Settings.from_env(env)
    assert (defaults.redis_pool_size, defaults.redis_pool_timeout_seconds, defaults.redis_timeout_seconds) == (50, 2, 2)
    assert (defaults.ws_before_hello_per_address, defaults.ws_before_hello_max) == (50, 1000)
    chosen = Settings.from_env({
        **env, "PORCHLIGHT_REDIS_POOL_SIZE": "20", "PORCHLIGHT_REDIS_POOL_TIMEOUT_SECONDS": "0",
        "PORCHLIGHT_REDIS_TIMEOUT_SECONDS": "0.5", "PORCHLIGHT_WS_BEFORE_HELLO_PER_ADDRESS": "5",
        "PORCHLIGHT_WS_BEFORE_HELLO_MAX": "100",
    })
    assert (chosen.redis_pool_size, chosen.redis_pool_timeout_seconds, chosen.redis_timeout_seconds) == (20, 0, 0.5)
    assert (chosen.ws_before_hello_per_address, chosen.ws_before_hello_max) == (5, 100)
    with pytest.raises(SettingsError) as bad:
        Settings.from_env({**env, "PORCHLIGHT_REDIS_POOL_SIZE": "0", "PORCHLIGHT_REDIS_TIMEOUT_SECONDS": "never",
                           "PORCHLIGHT_WS_BEFORE_HELLO_MAX": "-1"})
    assert len(bad.value.problems) == 3
