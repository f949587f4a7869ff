"""Several real `porchlight serve` processes on one Redis behave as one server (CONTRACT.md,
"Several processes and machines"): a patient's socket on one process, the facilitator's on
another, admission through either; media between them; the host killed mid-session; SIGTERM
handing sessions over; PORCHLIGHT_WORKERS=2 behind one port."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import RedisServer
from tests.media_peer import MediaPeer
from tests.test_billing_crash import SECRET, start
from tests.test_cli import PORCHLIGHT, _env

PASSWORD = "a long password"
KEY = "scale-out-test-secret-key-" + "k" * 32


@dataclass
class Node:
    process: asyncio.subprocess.Process
    base: str
    output: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    def read_output(self) -> None:
        """Keep reading the process's output (a full pipe would stall it); shown when a test fails."""
        async def read() -> None:
            assert self.process.stdout is not None
            while line := await self.process.stdout.readline():
                self.output.append(line.decode())

        self.reader = asyncio.create_task(read())

    @property
    def ws_url(self) -> str:
        return self.base.replace("http", "ws", 1) + "/api/v1/ws"


@dataclass
class Socket:
    """One client's WebSocket; frames kept in arrival order, media frames handed to its peer."""

    ws: aiohttp.ClientWebSocketResponse
    frames: list[dict[str, Any]] = field(default_factory=list)
    media: MediaPeer | None = None
    task: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            self.frames.append(frame)
            if self.media is not None:
                if frame["type"] == "media_reset":
                    await self.media.reset()
                else:
                    await self.media.handle(frame)
            self.changed.set()

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_json(frame)

    async def until(self, kind: str, after: int = 0, timeout: float = 20) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for frame in self.frames[after:]:
                    if frame["type"] == kind:
                        return frame
                self.changed.clear()
                await self.changed.wait()

    async def close(self) -> None:
        if self.media is not None:
            await self.media.close()
        await self.ws.close()
        if self.task is not None:
            self.task.cancel()


class Deployment:
    """Processes sharing one Redis and one secret key; one signed-in HTTP client per role."""

    def __init__(self, tmp_path: Path, redis: RedisServer, webhook: str | None = None, **settings: str) -> None:
        self.tmp_path = tmp_path
        self.env = {"PORCHLIGHT_REDIS_URL": redis.url, "PORCHLIGHT_SECRET_KEY": KEY,
                    "PORCHLIGHT_NODE_TIMEOUT_SECONDS": "2", "PORCHLIGHT_HEARTBEAT_INTERVAL_SECONDS": "0.5",
                    "PORCHLIGHT_RECONNECT_GRACE_SECONDS": "60", **settings}
        if webhook:
            self.env.update({"PORCHLIGHT_BILLING_WEBHOOK_URL": webhook, "PORCHLIGHT_BILLING_WEBHOOK_SECRET": SECRET})
        self.nodes: list[Node] = []
        self.http: dict[str, aiohttp.ClientSession] = {}
        self.csrf: dict[str, str] = {}
        self.sockets: list[Socket] = []

    async def start_node(self) -> Node:
        data_dir = self.tmp_path / f"node{len(self.nodes)}"
        data_dir.mkdir()
        process, base = await start(_env(data_dir, **self.env))
        node = Node(process, base)
        node.read_output()
        self.nodes.append(node)
        return node

    async def add_user(self, name: str, role: str) -> None:
        added = subprocess.run([*PORCHLIGHT, "user", "add", name, "--role", role, "--npi", "1234567893"],
                               input=PASSWORD + "\n", text=True, capture_output=True, timeout=60,
                               env=_env(self.tmp_path, **self.env))
        assert added.returncode == 0, added.stderr

    async def sign_in(self, name: str, node: Node) -> None:
        http = self.http[name] = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        resp = await http.post(f"{node.base}/api/v1/login", json={"username": name, "password": PASSWORD})
        assert resp.status == 200, await resp.text()
        self.csrf[name] = (await resp.json())["csrf_token"]

    async def call(self, who: str, node: Node, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        resp = await self.http[who].request(method, f"{node.base}/api/v1{path}", json=body,
                                            headers={"X-CSRF-Token": self.csrf[who]})
        assert resp.status == status, await resp.text()
        return await resp.json()

    async def socket(self, node: Node, hello: dict[str, Any], who: str | None = None, media: bool = False) -> Socket:
        http = self.http[who] if who else self.http.setdefault("anonymous", aiohttp.ClientSession())
        ws = await http.ws_connect(node.ws_url, headers={"Origin": node.base})
        sock = Socket(ws)
        if media:
            sock.media = MediaPeer(sock.send)
        sock.start()
        self.sockets.append(sock)
        await sock.send(hello)
        return sock

    async def close(self) -> None:
        for sock in self.sockets:
            await sock.close()
        for http in self.http.values():
            await http.close()
        for i, node in enumerate(self.nodes):
            if node.process.returncode is None:
                node.process.kill()
                await node.process.wait()
            print(f"--- node {i} ---\n" + "".join(node.output))


@dataclass
class Clinic:
    group_id: str
    facilitator: str
    patients: list[str]  # ids
    tokens: list[str]


async def clinic(d: Deployment, node: Node, patients: int) -> Clinic:
    await d.add_user("admin", "admin")
    await d.add_user("dana", "facilitator")
    await d.sign_in("admin", node)
    await d.sign_in("dana", node)
    dana = (await d.call("dana", node, "GET", "/me"))["user"]["id"]
    group = await d.call("admin", node, "POST", "/groups", {
        "name": "Evening IOP", "program": "IOP", "facilitator_ids": [dana], "capacity": 15}, 201)
    ids, tokens = [], []
    for i in range(patients):
        patient = await d.call("admin", node, "POST", "/patients", {"display_name": f"Patient {i}"}, 201)
        enrolled = await d.call("admin", node, "POST", f"/groups/{group['id']}/enrollments",
                                {"patient_id": patient["id"]}, 201)
        ids.append(patient["id"])
        tokens.append(enrolled["join_url"].rsplit("/j/", 1)[1])
    return Clinic(group["id"], dana, ids, tokens)


@pytest.fixture
async def deployment(tmp_path: Path, own_redis: RedisServer) -> AsyncIterator[Callable[..., Deployment]]:
    made: list[Deployment] = []

    def make(**settings: str) -> Deployment:
        made.append(Deployment(tmp_path, own_redis, **settings))
        return made[-1]

    yield make
    for d in made:
        await d.close()


async def _node_ids(d: Deployment, node: Node, count: int) -> list[str]:
    async with asyncio.timeout(20):
        while True:
            nodes = (await d.call("admin", node, "GET", "/nodes"))["nodes"]
            if len(nodes) == count:
                return [n["id"] for n in nodes]
            await asyncio.sleep(0.1)


async def test_a_patient_on_one_process_is_admitted_and_seen_by_a_facilitator_on_another(
    deployment: Callable[..., Deployment]
) -> None:
    d = deployment()
    a, b = await d.start_node(), await d.start_node()
    c = await clinic(d, a, patients=1)
    await _node_ids(d, a, 2)
    session = await d.call("dana", b, "POST", f"/groups/{c.group_id}/sessions", None, 201)
    host = (await d.call("dana", a, "GET", f"/sessions/{session['id']}"))["media_node"]

    patient = await d.socket(a, {"type": "hello", "token": c.tokens[0]}, media=True)
    await patient.until("waiting")
    console = await d.socket(b, {"type": "hello", "session_id": session["id"]}, who="dana", media=True)
    await console.until("roster")
    async with asyncio.timeout(10):  # the console hears of the arrival, across processes
        while not any(f["type"] == "waiting_list" and f["waiting"] for f in console.frames):
            await console.changed.wait()
            console.changed.clear()

    started = time.perf_counter()
    assert (await d.call("dana", a, "POST", f"/sessions/{session['id']}/admit", {"all": True})) == {
        "admitted": [c.patients[0]]}
    await patient.until("admitted")
    assert time.perf_counter() - started < 5

    # Media: both publish; each sees the other, through the host, whichever process their socket is on.
    assert patient.media is not None and console.media is not None
    await patient.media.publish()
    await console.media.publish()
    await patient.media.sees(c.facilitator)
    await console.media.sees(c.patients[0])
    for node in (a, b):  # forwarded by processes that never loaded PyAV (server/media/without_pyav.py)
        assert "av.libs" not in Path(f"/proc/{node.process.pid}/maps").read_text()
    roster = await console.until("roster", after=len(console.frames) - 1)
    assert {p["id"] for p in roster["participants"]} >= {c.facilitator}

    # Chat and a bad frame cross too: the refusal reaches the socket that sent it.
    await patient.send({"type": "chat", "text": "can you hear me?"})
    said = await console.until("chat")
    assert said["text"] == "can you hear me?" and said["from"]["id"] == c.patients[0]
    await patient.send({"type": "nonsense"})
    assert (await patient.until("error"))["code"] == "bad_request"
    assert host in await _node_ids(d, a, 2)


async def test_the_host_killed_mid_session_media_comes_back_and_attendance_and_billing_are_exact(
    deployment: Callable[..., Deployment], aiohttp_server: Any
) -> None:
    got: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(json.loads(await request.read()))
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    server = await aiohttp_server(receiver)
    d = deployment(webhook=str(server.make_url("/hook")))
    a, b = await d.start_node(), await d.start_node()
    c = await clinic(d, a, patients=2)
    ids = await _node_ids(d, a, 2)
    # The session is opened through B, which hosts it (a tie in load goes to the process asked).
    session = await d.call("dana", b, "POST", f"/groups/{c.group_id}/sessions", None, 201)
    host = (await d.call("dana", a, "GET", f"/sessions/{session['id']}"))["media_node"]
    assert host == ids[1]

    stays = await d.socket(a, {"type": "hello", "token": c.tokens[0]}, media=True)  # socket on A, survives
    drops = await d.socket(b, {"type": "hello", "token": c.tokens[1]})  # socket on the host, which dies
    console = await d.socket(a, {"type": "hello", "session_id": session["id"]}, who="dana", media=True)
    await stays.until("waiting")
    await drops.until("waiting")
    await d.call("dana", a, "POST", f"/sessions/{session['id']}/admit", {"all": True})
    await stays.until("admitted")
    await drops.until("admitted")
    admitted_at = time.monotonic()
    assert stays.media is not None and console.media is not None
    await stays.media.publish()
    await console.media.publish()
    await stays.media.sees(c.facilitator)
    await console.media.sees(c.patients[0])

    # Both attend a few seconds before the host dies (so each has billable time to lose or keep).
    await asyncio.sleep(max(0.0, 3 - (time.monotonic() - admitted_at)))
    killed_at = time.time()
    b.process.kill()
    await b.process.wait()
    # Everyone whose socket was on A gets media_reset from the new host, and media again.
    await stays.until("media_reset", timeout=15)
    await console.until("media_reset", timeout=15)
    await stays.media.sees(c.facilitator, timeout=20)
    await console.media.sees(c.patients[0], timeout=20)
    back_after = time.time() - killed_at
    assert back_after < 2 + 3 + 5  # NODE_TIMEOUT + 3 s, with room for a loaded test machine
    assert (await d.call("dana", a, "GET", f"/sessions/{session['id']}"))["media_node"] == ids[0]

    # The patient whose socket died reconnects within the grace period: straight back in.
    again = await d.socket(a, {"type": "hello", "token": c.tokens[1]})
    await again.until("admitted")

    ended = await d.call("dana", a, "POST", f"/sessions/{session['id']}/end")
    assert ended["state"] == "ended"
    events = (await d.call("dana", a, "GET", f"/sessions/{session['id']}/events"))["events"]
    left = [(e["patient_id"], e["reason"]) for e in events if e["type"] == "left"]
    # The one whose socket lived was never dropped (no invented gap); the other dropped once.
    assert left.count((c.patients[0], "drop")) == 0
    assert left.count((c.patients[1], "drop")) == 1
    try:
        async with asyncio.timeout(30):  # billing: one record per attending patient, exactly once
            while len(got) < 2:
                await asyncio.sleep(0.1)
    except TimeoutError:
        records = await d.call("admin", a, "GET", f"/attendance?group_id={c.group_id}")
        raise AssertionError(f"{got} {await d.call('admin', a, 'GET', '/billing/deliveries')} {events} "
                             f"{records}") from None
    records = await d.call("admin", a, "GET", f"/attendance?group_id={c.group_id}")
    assert sorted(r["patient_id"] for r in records["records"] if r["attended_seconds"] > 0) == sorted(c.patients)
    await asyncio.sleep(0)  # (the count below is of what arrived; a duplicate would be a third)
    assert sorted(g["data"]["patient_id"] for g in got) == sorted(c.patients)


async def test_sigterm_hands_the_session_to_the_other_process(deployment: Callable[..., Deployment]) -> None:
    d = deployment(PORCHLIGHT_DRAIN_SECONDS="60")
    a, b = await d.start_node(), await d.start_node()
    c = await clinic(d, a, patients=1)
    ids = await _node_ids(d, a, 2)
    session = await d.call("dana", b, "POST", f"/groups/{c.group_id}/sessions", None, 201)
    patient = await d.socket(a, {"type": "hello", "token": c.tokens[0]}, media=True)
    console = await d.socket(b, {"type": "hello", "session_id": session["id"]}, who="dana")
    await patient.until("waiting")
    await d.call("dana", a, "POST", f"/sessions/{session['id']}/admit", {"all": True})
    await patient.until("admitted")

    b.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(20):
        assert await b.process.wait() == 0  # not the 60 s drain: another process took the session
    async with asyncio.timeout(10):
        while not console.ws.closed:
            await asyncio.sleep(0.05)
    assert console.ws.close_code == 1012
    await patient.until("media_reset")
    assert patient.media is not None
    described = await d.call("dana", a, "GET", f"/sessions/{session['id']}")
    assert described["media_node"] == ids[0] and [p["patient_id"] for p in described["participants"]] == [
        c.patients[0]]
    events = (await d.call("dana", a, "GET", f"/sessions/{session['id']}/events"))["events"]
    assert not [e for e in events if e["type"] == "left"]  # the patient never left


async def test_workers_share_one_port_and_one_embedded_redis(tmp_path: Path) -> None:
    env = _env(tmp_path, PORCHLIGHT_WORKERS="2", PORCHLIGHT_SECRET_KEY=KEY)
    added = subprocess.run([*PORCHLIGHT, "user", "add", "admin", "--role", "admin"], input=PASSWORD + "\n",
                           text=True, capture_output=True, timeout=60, env=env)
    assert added.returncode == 0, added.stderr
    process, base = await start(env)
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            resp = await http.post(f"{base}/api/v1/login", json={"username": "admin", "password": PASSWORD})
            csrf = (await resp.json())["csrf_token"]

            async def nodes() -> list[dict[str, Any]]:
                got = await http.get(f"{base}/api/v1/nodes", headers={"X-CSRF-Token": csrf})
                assert got.status == 200
                return list((await got.json())["nodes"])

            async with asyncio.timeout(20):
                while len(await nodes()) != 2:
                    await asyncio.sleep(0.1)
            answered_by = set()  # connections spread over both workers (each answers /readyz)
            async with asyncio.timeout(20):
                while len(answered_by) < 2:
                    async with aiohttp.ClientSession() as fresh:  # a new connection each time
                        ready = await fresh.get(f"{base}/readyz")
                        assert ready.status == 200
                        answered_by.add(ready.headers.get("X-Porchlight-Node"))
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

