"""A server killed with SIGKILL after finalising a session delivers its record after restart."""

from __future__ import annotations

import asyncio
import base64
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.test_billing import verify_standard_webhook
from tests.test_cli import PORCHLIGHT, _env

SECRET = "whsec_" + base64.b64encode(b"crash-test-webhook-secret-0123456").decode()


async def start(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        *PORCHLIGHT, "serve", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    seen = []
    async with asyncio.timeout(60):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, "server exited: " + "".join(seen)
            seen.append(line)
            if match := re.search(r"running at (http://\S+)", line):
                return process, match.group(1)


Login = Callable[[str], Awaitable[str]]  # a user name -> the CSRF token of its new sign-in
Call = Callable[..., Awaitable[Any]]  # (method, path, csrf, body=None, status=200) -> the JSON answer


def signed_in(http: aiohttp.ClientSession, jar: aiohttp.CookieJar, base: str, password: str) -> tuple[Login, Call]:
    """`login(name)`: sign in as that user (the jar's cookies replaced), its CSRF token back;
    `call(method, path, csrf, body=None, status=200)`: a request that must answer `status`."""
    async def login(name: str) -> str:
        jar.clear()
        resp = await http.post(f"{base}/api/v1/login", json={"username": name, "password": password})
        assert resp.status == 200
        return str((await resp.json())["csrf_token"])

    async def call(method: str, path: str, csrf: str, body: Any = None, status: int = 200) -> Any:
        resp = await http.request(method, f"{base}/api/v1{path}", json=body, headers={"X-CSRF-Token": csrf})
        assert resp.status == status, await resp.text()
        return await resp.json()

    return login, call


async def attend_and_end(http: aiohttp.ClientSession, base: str, login: Login, call: Call, facilitator_id: str) -> None:
    """Through a running server's API, as "admin" then as the facilitator "dana": a group, one
    patient checked in over a real WebSocket and admitted, a little more than a second of
    attendance, the session ended (its finalisation queues one billing record)."""
    csrf = await login("admin")
    group = await call("POST", "/groups", csrf, {"name": "Crash test", "program": "PHP",
                                                 "facilitator_ids": [facilitator_id]}, 201)
    patient = await call("POST", "/patients", csrf, {"display_name": "Robin K."}, 201)
    enrollment = await call("POST", f"/groups/{group['id']}/enrollments", csrf, {"patient_id": patient["id"]}, 201)
    csrf = await login("dana")
    session = await call("POST", f"/groups/{group['id']}/sessions", csrf, None, 201)
    ws = await http.ws_connect(f"{base}/api/v1/ws")
    await ws.send_json({"type": "hello", "token": enrollment["join_url"].rsplit("/j/", 1)[1], "location": "home"})
    assert (await ws.receive_json(timeout=10))["type"] == "waiting"
    await call("POST", f"/sessions/{session['id']}/admit", csrf, {"all": True})
    assert (await ws.receive_json(timeout=10))["type"] == "admitted"
    await asyncio.sleep(1.2)  # a little real attendance: more than one whole second
    await call("POST", f"/sessions/{session['id']}/end", csrf)
    await ws.close()


@pytest.fixture
async def receiver(aiohttp_server: Any) -> AsyncIterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    got: list[tuple[dict[str, str], bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", handle)
    server = await aiohttp_server(app)
    yield str(server.make_url("/hook")), got


async def test_sigkill_between_finalisation_and_delivery_delivers_once_after_restart(
    tmp_path: Path, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, got = receiver
    for name, role in (("admin", "admin"), ("dana", "facilitator")):
        added = subprocess.run([*PORCHLIGHT, "user", "add", name, "--role", role, "--npi", "1234567893"],
                               input="a long password\n", text=True, capture_output=True, env=_env(tmp_path),
                               timeout=60)
        assert added.returncode == 0, added.stderr
    # First life: no billing endpoint yet, so the record can only wait in the outbox.
    process, base = await start(_env(tmp_path))
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        login, call = signed_in(http, jar, base, "a long password")

        csrf = await login("admin")
        me = await call("GET", "/me", csrf)
        users = {"admin": me["user"]["id"]}
        csrf = await login("dana")
        users["dana"] = (await call("GET", "/me", csrf))["user"]["id"]
        await attend_and_end(http, base, login, call, users["dana"])
        csrf = await login("admin")
        pending = (await call("GET", "/billing/deliveries?status=pending", csrf))["deliveries"]
        assert len(pending) == 1
        record_id = pending[0]["record_id"]

    process.send_signal(signal.SIGKILL)
    await process.wait()

    # Second life, now with the endpoint configured: the record is delivered, once, under its id.
    env = _env(tmp_path, PORCHLIGHT_BILLING_WEBHOOK_URL=url, PORCHLIGHT_BILLING_WEBHOOK_SECRET=SECRET,
               PORCHLIGHT_BILLING_RETRY_BASE_SECONDS="0.2")
    await _wait_for_socket_free(tmp_path)
    process, base = await start(env)
    try:
        # Once the record is delivered in Redis it is never claimed again: what the receiver has
        # by then is all it will ever get.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            resp = await http.post(f"{base}/api/v1/login", json={"username": "admin", "password": "a long password"})
            assert resp.status == 200
            async with asyncio.timeout(60):
                while True:
                    delivered = await (await http.get(f"{base}/api/v1/billing/deliveries?status=delivered")).json()
                    if [d["record_id"] for d in delivered["deliveries"]] == [record_id]:
                        break
                    await asyncio.sleep(0.05)
        assert delivered["deliveries"][0]["attempts"] == 1
        assert [h["webhook-id"] for h, _ in got] == [record_id]
        headers, body = got[0]
        import time

        assert verify_standard_webhook(SECRET, headers, body, time.time())
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0


async def _wait_for_socket_free(data_dir: Path) -> None:
    """The killed server's embedded Redis stops on its own (it is told when its parent dies)."""
    from server.store.embedded import EmbeddedRedis

    embedded = EmbeddedRedis(data_dir)
    async with asyncio.timeout(20):
        while embedded.running_elsewhere():
            await asyncio.sleep(0.05)



