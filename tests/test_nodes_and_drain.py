"""The processes of a deployment (GET /api/v1/nodes, a session's media_node) and a process
that is told to stop (SIGTERM): it takes nothing new, lets its session finish, then goes."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from server.app import create_app
from server.clock import ManualClock
from server.services import SERVICES
from server.settings import Settings
from server.store.connection import Redis
from tests.helpers import Api
from tests.test_billing_crash import start
from tests.test_cli import PORCHLIGHT, _env


async def test_every_process_that_heartbeats_is_listed_and_a_silent_one_is_not(
    aiohttp_client: Any, settings: Settings, redis: Redis, clock: ManualClock
) -> None:
    # Two processes on one Redis; their background rounds are driven by the test (`tend`).
    quiet = settings.replace(heartbeat_interval_seconds=3600)
    api = Api(await aiohttp_client(create_app(quiet, redis=redis, clock=clock)), redis, clock, quiet)
    second = Api(await aiohttp_client(create_app(quiet, redis=redis, clock=clock)), redis, clock, quiet)
    world = await api.world(patients=1)
    session_id = await api.open(world)
    await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True})
    first_lobby, second_lobby = api.client.app[SERVICES].lobby, second.client.app[SERVICES].lobby
    await first_lobby.tend()
    await second_lobby.tend()
    assert first_lobby.node is not None and second_lobby.node is not None

    nodes = {n["id"]: n for n in (await second.get(world.admin, "/nodes"))["nodes"]}
    assert set(nodes) == {first_lobby.node.node_id, second_lobby.node.node_id}
    hosting = nodes[first_lobby.node.node_id]
    assert (hosting["sessions"], hosting["participants"]) == (1, 1)
    assert hosting["address"] == "porchlight.test" and hosting["started_at"] and hosting["last_seen"]
    assert (await api.get(world.facilitator, f"/sessions/{session_id}"))["media_node"] == first_lobby.node.node_id
    await api.get(world.facilitator, "/nodes", expect=403)

    api.clock.advance(api.settings.node_timeout_seconds + 1)  # the second keeps beating, the first stops
    await second_lobby.tend()
    assert [n["id"] for n in (await second.get(world.admin, "/nodes"))["nodes"]] == [second_lobby.node.node_id]


@dataclass
class Running:
    """A real server process with one session open and one patient admitted."""

    process: asyncio.subprocess.Process
    base: str
    http: aiohttp.ClientSession  # signed in as the admin
    call: Callable[..., Awaitable[Any]]
    ws: aiohttp.ClientWebSocketResponse  # the patient's
    group_id: str
    session_id: str

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def _admitted_patient(tmp_path: Path, drain_seconds: str) -> Running:
    for name, role in (("admin", "admin"),):
        added = await asyncio.create_subprocess_exec(
            *PORCHLIGHT, "user", "add", name, "--role", role, env=_env(tmp_path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await added.communicate(b"a long password\n")
        assert added.returncode == 0, err
    process, base = await start(_env(tmp_path, PORCHLIGHT_DRAIN_SECONDS=drain_seconds))
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    csrf = ""

    async def call(method: str, path: str, body: Any = None, status: int = 200) -> Any:
        resp = await http.request(method, f"{base}/api/v1{path}", json=body, headers={"X-CSRF-Token": csrf})
        assert resp.status == status, await resp.text()
        return await resp.json()

    resp = await http.post(f"{base}/api/v1/login", json={"username": "admin", "password": "a long password"})
    csrf = (await resp.json())["csrf_token"]
    group = await call("POST", "/groups", {"name": "Drain", "program": "IOP", "facilitator_ids": []}, 201)
    patient = await call("POST", "/patients", {"display_name": "Robin K."}, 201)
    enrolled = await call("POST", f"/groups/{group['id']}/enrollments", {"patient_id": patient["id"]}, 201)
    session = await call("POST", f"/groups/{group['id']}/sessions", None, 201)
    ws = await http.ws_connect(f"{base}/api/v1/ws")
    await ws.send_json({"type": "hello", "token": enrolled["join_url"].rsplit("/j/", 1)[1]})
    assert (await ws.receive_json(timeout=10))["type"] == "waiting"
    await call("POST", f"/sessions/{session['id']}/admit", {"all": True})
    assert (await ws.receive_json(timeout=10))["type"] == "admitted"
    return Running(process, base, http, call, ws, group["id"], session["id"])


async def test_sigterm_drains_the_running_session_before_the_process_goes(tmp_path: Path) -> None:
    running = await _admitted_patient(tmp_path, drain_seconds="60")
    process, base, http, call = running.process, running.base, running.http, running.call
    try:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            while (ready := await http.get(f"{base}/readyz")).status != 503:
                await asyncio.sleep(0.05)
        assert (await ready.json())["status"] == "draining"
        assert (await http.get(f"{base}/livez")).status == 200
        refused = await call("POST", f"/groups/{running.group_id}/sessions", None, 503)  # nothing new
        assert refused["error"]["code"] == "unavailable"
        assert process.returncode is None  # the session is still running: the process waits

        await call("POST", f"/sessions/{running.session_id}/end")  # the group ends
        async with asyncio.timeout(20):
            assert await process.wait() == 0  # then the process goes, long before the 60 s
    finally:
        await running.close()


async def test_sigterm_closes_what_is_left_with_1012_after_the_drain_time(tmp_path: Path) -> None:
    running = await _admitted_patient(tmp_path, drain_seconds="1")
    process, ws = running.process, running.ws
    try:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            while (msg := await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                pass  # frames before the close
        assert ws.close_code == 1012 or msg.data == 1012  # service restart: the client reconnects elsewhere
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        await running.close()


async def test_processes_started_in_the_same_second_are_listed_in_the_order_they_started(redis: Redis) -> None:
    # The listing shows whole seconds; the order is the start's milliseconds, whichever beat last.
    from server.store.nodes import Load, NodeRegistry, live_nodes

    second = 1_764_000_000_000
    later = NodeRegistry(redis, "node_later", "10.0.0.2:8080", second + 900, 2_000)
    earlier = NodeRegistry(redis, "node_earlier", "10.0.0.1:8080", second + 100, 2_000)
    await later.beat(second + 1_000, Load(0, 0))
    await earlier.beat(second + 1_001, Load(0, 0))
    for raw in (False, True):
        listed = await live_nodes(redis, second + 1_002, 2_000, raw=raw)
        assert [n["id"] for n in listed] == ["node_earlier", "node_later"]
