"""Faults that must never lengthen a billed record: a patient who leaves while Redis is away.

A real redis-server is shut down (saving its data, as a production Redis with persistence
keeps it) and started again on the same port; the server's own background round (`tend`) is
driven directly, so nothing here depends on timers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import redis as sync_redis

from server.app import create_app
from server.clock import ManualClock
from server.services import SERVICES
from server.settings import Settings
from server.store.connection import connect
from tests.conftest import RedisServer
from tests.helpers import Api


def _outage(server: RedisServer) -> None:
    """Redis goes away with its data on disk (SHUTDOWN SAVE), like a restart or failover."""
    with sync_redis.Redis(port=server.port) as admin:
        try:
            admin.shutdown(save=True)
        except sync_redis.ConnectionError:
            pass  # the server closes the connection as it stops
    assert server.process is not None
    server.process.wait(10)
    server.process = None


async def test_leaving_during_a_redis_outage_is_billed_to_the_moment_of_leaving(
    aiohttp_client: Any, settings: Settings, own_redis: RedisServer
) -> None:
    own = own_redis
    redis = connect(own.url)
    clock = ManualClock()
    # The background round is driven by the test alone: no alive mark or finalisation by timer.
    settings = dataclasses.replace(settings, heartbeat_interval_seconds=3600)
    try:
        app = create_app(settings, redis=redis, clock=clock)
        api = Api(await aiohttp_client(app), redis, clock, settings)
        lobby = app[SERVICES].lobby
        world = await api.world(patients=3)
        session_id = await api.open(world)
        leaver, dropper, stayer = [await api.patient(token) for token in world.tokens]
        await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True})
        for sock in (leaver, dropper, stayer):
            await sock.until("admitted")
        clock.advance(3)
        await dropper.ws.ping()  # its browser is heard at 3 s (a ping, as heartbeats do)
        await dropper.ws.receive(timeout=5)  # the pong: the server has heard it
        door = lobby.doors[world.group["id"]]

        _outage(own)
        await leaver.send({"type": "leave"})  # leaves on purpose at 3 s
        await leaver.closed()
        await dropper.close()  # the tab is closed at 3 s: a drop, last heard then
        gone = {world.patients[0]["id"], world.patients[1]["id"]}
        async with asyncio.timeout(5):  # the server has let go of both connections
            while gone & set(door.presence.patients):
                await asyncio.sleep(0.01)
        for _ in range(3):  # the outage lasts 30 s; the server keeps trying
            clock.advance(10)
            await lobby.tend()

        own.start()  # same port, data restored from the dump
        async with asyncio.timeout(10):  # both departures reach the record
            while {e["patient_id"] for e in await api.events(world.facilitator, session_id)
                   if e["type"] == "left"} != gone:
                await lobby.tend()
                await asyncio.sleep(0.05)
        clock.advance(60)
        await api.post(world.facilitator, f"/sessions/{session_id}/end")
        records = {r["patient_id"]: r for r in
                   (await api.get(world.facilitator, f"/sessions/{session_id}/attendance"))["records"]}
        assert records[world.patients[0]["id"]]["attended_seconds"] == 3
        assert records[world.patients[1]["id"]]["attended_seconds"] == 3
        assert records[world.patients[2]["id"]]["attended_seconds"] == 93  # present throughout
        await stayer.close()
    finally:
        await redis.aclose()
