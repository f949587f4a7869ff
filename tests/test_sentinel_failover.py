"""Redis behind Sentinel: the master dies (SIGKILL) in the middle of a session, a Sentinel promotes
the replica, and the same `porchlight serve` process carries on against the new master with every
attendance event it had acknowledged.

Everything is real: a redis-server master and replica, a `redis-server --sentinel`, a server
process and WebSocket clients. The URL parser and the replica confirmation (WAIT) are tested
on their own below.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis as sync_redis

from server.settings import Settings, SettingsError
from server.store import sentinel
from server.store.connection import RedisProbe, connect
from tests.test_billing_crash import start
from tests.test_cli import PORCHLIGHT, _env
from tools.sentinel import SentinelDeployment

KEY = "sentinel-test-key-" + "s" * 32


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[SentinelDeployment]:
    redis_set = SentinelDeployment(tmp_path / "redis")
    redis_set.start()
    yield redis_set
    redis_set.stop()


def test_the_sentinel_url_names_the_sentinels_the_service_the_database_and_the_passwords() -> None:
    url = sentinel.parse("redis+sentinel://:p%40ss@sentinel-a:26380,sentinel-b,[::1]:26381/porchlight/2"
                         "?sentinel_password=s3")
    assert url.sentinels == (("sentinel-a", 26380), ("sentinel-b", 26379), ("::1", 26381))
    assert (url.service_name, url.db, url.username, url.password, url.sentinel_password) == (
        "porchlight", 2, None, "p@ss", "s3")
    assert "p@ss" not in repr(url) and "s3" not in repr(url)
    assert sentinel.parse("redis+sentinel://app:pw@s1:1/svc").username == "app"


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://:secret@s1:26379", "name the monitored service"),
    ("redis+sentinel://:secret@s1:26379/svc/zero", "is a number"),
    ("redis+sentinel://:secret@s1:port/svc", "port is a number"),
    ("redis+sentinel://:secret@s1,/svc", "host[:port]"),
    ("redis+sentinel://:secret@s1/svc?ssl=1", "unknown option 'ssl'"),
    ("sentinel://:secret@s1/svc", "redis+sentinel://"),
])
def test_a_bad_sentinel_url_is_refused_at_start_up_without_repeating_the_password(
        tmp_path: Path, url: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"PORCHLIGHT_REDIS_URL": url, "PORCHLIGHT_DATA_DIR": str(tmp_path)})
    problems = "\n".join(caught.value.problems)
    assert says in problems and "secret" not in problems


def test_a_sentinel_url_may_come_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("redis+sentinel://:pw@sentinel:26379/porchlight\n")
    settings = Settings.from_env({"PORCHLIGHT_REDIS_URL_FILE": str(tmp_path / "url"),
                                  "PORCHLIGHT_DATA_DIR": str(tmp_path)})
    assert settings.redis_url == "redis+sentinel://:pw@sentinel:26379/porchlight"
    assert "pw" not in repr(settings)


async def test_a_transaction_is_acknowledged_once_the_replica_holds_it(
        deployment: SentinelDeployment, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "porchlight.redis")
    client = connect(deployment.url)
    replica = sync_redis.Redis(port=deployment.replica_port, decode_responses=True)
    try:
        assert isinstance(client, sentinel.SentinelRedis)
        async with client.pipeline(transaction=True) as pipe:
            pipe.rpush("pl:test:events", "admitted")
            await pipe.execute()
        assert replica.lrange("pl:test:events", 0, -1) == ["admitted"]  # no waiting: it is there
        assert client.replicas.unconfirmed == 0

        # A replica that stops answering: the write still succeeds on the master, after WAIT's
        # timeout, and is counted as unconfirmed; the next writes do not wait again at once.
        replica_process = deployment.processes[deployment.replica_port]
        os.kill(replica_process.pid, signal.SIGSTOP)
        try:
            for n in range(2):
                async with client.pipeline(transaction=True) as pipe:
                    pipe.rpush("pl:test:events", f"left-{n}")
                    await pipe.execute()
            assert client.replicas.unconfirmed == 1
        finally:
            os.kill(replica_process.pid, signal.SIGCONT)
        assert await client.lrange("pl:test:events", 0, -1) == ["admitted", "left-0", "left-1"]

        # Once the pause is over (its clock moved on), writes wait for the replica again.
        client.replicas._clock = lambda: time.monotonic() + sentinel.REPLICA_RETRY_AFTER
        async with client.pipeline(transaction=True) as pipe:
            pipe.rpush("pl:test:events", "joined")
            await pipe.execute()
        assert replica.lrange("pl:test:events", -1, -1) == ["joined"] and client.replicas.unconfirmed == 1
        assert [r.getMessage().split(" within")[0].split(":")[0] for r in caplog.records] == [
            "no Redis replica confirmed a write", "a Redis replica confirms writes again"]
    finally:
        replica.close()
        await client.aclose()


async def test_the_health_probe_follows_the_master_through_a_failover(deployment: SentinelDeployment) -> None:
    client = connect(deployment.url)
    probe = RedisProbe(client)
    try:
        assert await probe.up()
        old = await asyncio.to_thread(deployment.kill_master)
        await asyncio.to_thread(deployment.until_failed_over, old)
        async with asyncio.timeout(20):
            while not await probe.up():
                await asyncio.sleep(0.05)
        assert await client.ping()
    finally:
        await probe.aclose()
        await client.aclose()


@pytest.fixture
async def server(tmp_path: Path, deployment: SentinelDeployment) -> AsyncIterator[tuple[str, Callable[..., Any]]]:
    env = _env(tmp_path, PORCHLIGHT_REDIS_URL=deployment.url, PORCHLIGHT_SECRET_KEY=KEY,
               PORCHLIGHT_HEARTBEAT_INTERVAL_SECONDS="0.2")
    added = await asyncio.create_subprocess_exec(
        *PORCHLIGHT, "user", "add", "admin", "--role", "admin", env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await added.communicate(b"a long password\n")
    assert added.returncode == 0, err
    process, base = await start(env)
    try:
        yield base, env.get
    finally:
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()


async def test_the_deployment_serves_again_after_the_master_is_killed_and_loses_no_acknowledged_event(
        deployment: SentinelDeployment, server: tuple[str, Any]) -> None:
    base, _ = server
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        resp = await http.post(f"{base}/api/v1/login", json={"username": "admin", "password": "a long password"})
        assert resp.status == 200
        csrf = (await resp.json())["csrf_token"]

        async def call(method: str, path: str, body: Any = None, status: int = 200) -> Any:
            resp = await http.request(method, f"{base}/api/v1{path}", json=body, headers={"X-CSRF-Token": csrf})
            assert resp.status == status, await resp.text()
            return await resp.json()

        group = await call("POST", "/groups", {"name": "Failover", "program": "IOP", "facilitator_ids": []}, 201)
        tokens, ids = [], []
        for name in ("Ana P.", "Ben Q.", "Cy R."):
            patient = await call("POST", "/patients", {"display_name": name}, 201)
            enrolled = await call("POST", f"/groups/{group['id']}/enrollments", {"patient_id": patient["id"]}, 201)
            tokens.append(enrolled["join_url"].rsplit("/j/", 1)[1])
            ids.append(patient["id"])
        session_id = (await call("POST", f"/groups/{group['id']}/sessions", None, 201))["id"]

        async def check_in(token: str) -> aiohttp.ClientWebSocketResponse:
            ws = await http.ws_connect(f"{base}/api/v1/ws")
            await ws.send_json({"type": "hello", "token": token, "location": "home"})
            assert (await _frame(ws, "waiting"))["session_id"] == session_id
            return ws

        ana, ben = await check_in(tokens[0]), await check_in(tokens[1])
        await call("POST", f"/sessions/{session_id}/admit", {"patient_ids": ids[:2]})
        acknowledged = (await call("GET", f"/sessions/{session_id}/events"))["events"]
        assert [(e["type"], e["patient_id"]) for e in acknowledged].count(("joined", ids[1])) == 1

        # The master dies the moment after the last acknowledgement.
        old = await asyncio.to_thread(deployment.kill_master)
        await ana.send_json({"type": "leave"})  # leaves while there is no master: kept, then recorded
        await _closed(ana)
        await asyncio.to_thread(deployment.until_failed_over, old)

        async with asyncio.timeout(30):  # serving again: the process found the new master itself
            while (await http.get(f"{base}/readyz")).status != 200:
                await asyncio.sleep(0.05)
        async with asyncio.timeout(30):
            while not any(e["type"] == "left" for e in await _events(call, session_id)):
                await asyncio.sleep(0.05)
        cy = await check_in(tokens[2])
        await call("POST", f"/sessions/{session_id}/admit", {"patient_ids": [ids[2]]})
        await _frame(cy, "admitted")
        await call("POST", f"/sessions/{session_id}/end")

        events = await _events(call, session_id)
        assert all(event in events for event in acknowledged), "an acknowledged event was lost"
        left = [(e["patient_id"], e["reason"]) for e in events if e["type"] == "left"]
        # Ana's leave reached the record; Ben, connected to the live process throughout, was never dropped.
        assert left == [(ids[0], "leave"), (ids[1], "session_end"), (ids[2], "session_end")]
        async with asyncio.timeout(30):  # finalised on the new master
            while not (attendance := await call("GET", f"/sessions/{session_id}/attendance"))["final"]:
                await asyncio.sleep(0.1)
        records = {r["patient_id"]: r for r in attendance["records"]}
        assert set(records) == set(ids)
        assert records[ids[1]]["status"] == "attended"  # through the failover, no gap
        assert records[ids[1]]["attended_seconds"] >= 1 and records[ids[1]]["reconnects"] == 0
        for ws in (ben, cy):
            await ws.close()


async def _events(call: Callable[..., Awaitable[Any]], session_id: str) -> list[dict[str, Any]]:
    return list((await call("GET", f"/sessions/{session_id}/events"))["events"])


async def _frame(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            frame = await ws.receive_json()
            if frame["type"] == kind:
                return dict(frame)


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> None:
    async with asyncio.timeout(15):
        while (await ws.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                                aiohttp.WSMsgType.CLOSING):
            pass
