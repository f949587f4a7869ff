"""WebSockets that have not said hello are capped per client address and in all; a socket stops
counting at its hello, so many patients behind one address all get in."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from server.app import create_app
from server.clock import ManualClock
from server.errors import ApiError
from server.realtime.hello_gate import HelloGate
from server.settings import Settings
from server.store.connection import Redis
from tests.helpers import Api, Socket, scrape


async def _api(aiohttp_client: Any, settings: Settings, redis: Redis) -> Api:
    clock = ManualClock()
    return Api(await aiohttp_client(create_app(settings, redis=redis, clock=clock)), redis, clock, settings)


async def _refused(api: Api) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.ws()
    return refused.value.status


async def _connects_within(api: Api, seconds: float = 5.0) -> Socket:
    """The slot is given back when the server's handler ends, a moment after our close."""
    async with asyncio.timeout(seconds):
        while True:
            try:
                return await api.ws()
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 429
                await asyncio.sleep(0.02)


async def test_an_address_may_not_hold_more_sockets_before_hello_than_its_cap(
    aiohttp_client: Any, settings: Settings, redis: Redis
) -> None:
    api = await _api(aiohttp_client, settings.replace(ws_before_hello_per_address=3), redis)
    idle = [await api.ws() for _ in range(3)]
    assert await _refused(api) == 429
    metrics = await scrape(api.client)
    assert metrics['porchlight_errors_total{code="too_many_connections"}'] >= 1

    await idle.pop().close()
    idle.append(await _connects_within(api))
    assert await _refused(api) == 429
    for sock in idle:
        await sock.close()


async def test_all_addresses_together_may_not_hold_more_sockets_before_hello_than_the_total_cap(
    aiohttp_client: Any, settings: Settings, redis: Redis
) -> None:
    api = await _api(aiohttp_client, settings.replace(ws_before_hello_per_address=100, ws_before_hello_max=2), redis)
    idle = [await api.ws() for _ in range(2)]
    assert await _refused(api) == 429
    for sock in idle:
        await sock.close()


async def test_patients_behind_one_address_all_get_in_because_hello_ends_the_count(
    aiohttp_client: Any, settings: Settings, redis: Redis
) -> None:
    """A clinic NAT: six patients and their facilitator from one address, with a cap of two and
    one idle socket holding one of the two slots all along."""
    api = await _api(aiohttp_client, settings.replace(ws_before_hello_per_address=2), redis)
    world = await api.world(patients=6)
    await api.open(world)
    idle = await api.ws()
    patients = [await api.patient(token) for token in world.tokens]
    staff = await api.staff_socket(world.facilitator, group_id=world.group["id"])
    assert all(sock.seen[-1]["type"] == "waiting" for sock in patients)
    second_idle = await api.ws()  # the helloed sockets hold no slot: the second is still free
    assert await _refused(api) == 429
    for sock in [idle, second_idle, staff, *patients]:
        await sock.close()


async def test_the_caps_count_each_address_apart_and_a_finished_socket_frees_its_slot() -> None:
    gate = HelloGate(per_address=2, total=3, deadline=60)
    release = {name: asyncio.Event() for name in ("a1", "a2", "b1", "c1")}

    async def hold(name: str, address: str) -> None:
        gate.enter(address)
        await release[name].wait()

    held = {name: asyncio.create_task(hold(name, address)) for name, address in
            (("a1", "10.0.0.1"), ("a2", "10.0.0.1"), ("b1", "10.0.0.2"))}
    await asyncio.sleep(0)  # each has entered
    assert gate.waiting_for_hello == 3
    with pytest.raises(ApiError) as per_address:
        gate.enter("10.0.0.1")
    with pytest.raises(ApiError) as total:
        gate.enter("10.0.0.3")
    assert per_address.value.status == total.value.status == 429

    release["a1"].set()
    await held["a1"]
    held["c1"] = asyncio.create_task(hold("c1", "10.0.0.3"))  # a slot in the total came free
    await asyncio.sleep(0)
    assert held["c1"].done() is False and gate.waiting_for_hello == 3
    for name in ("a2", "b1", "c1"):
        release[name].set()
    await asyncio.gather(*held.values())
    assert gate.waiting_for_hello == 0
