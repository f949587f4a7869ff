"""Driving the server the way clients do: the HTTP API and the WebSocket protocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from server.auth.sessions import COOKIE_NAME
from server.auth.staff import Role, create_user
from server.clock import ManualClock
from server.settings import Settings
from server.store.connection import Redis

WAIT = 5.0  # seconds: the most any expected frame may take


@dataclass
class Staff:
    user_id: str
    cookie: str
    csrf: str
    username: str


@dataclass
class Socket:
    ws: aiohttp.ClientWebSocketResponse
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def next(self, timeout: float = WAIT) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        while msg.type is aiohttp.WSMsgType.PING:
            # Answered like a browser, except that a ping that crosses the server's close is
            # not an error: the frames before the close are still read.
            with contextlib.suppress(aiohttp.ClientConnectionResetError):
                await self.ws.pong(msg.data)
            msg = await self.ws.receive(timeout=timeout)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"expected a frame, got {msg.type.name} {msg.data!r} {msg.extra!r}")
        frame: dict[str, Any] = json.loads(msg.data)
        self.seen.append(frame)
        return frame

    async def until(self, kind: str, where: Any = None, timeout: float = WAIT) -> dict[str, Any]:
        """Read frames until one of `kind` (matching `where`) arrives."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next(timeout)
                if frame["type"] == kind and (where is None or where(frame)):
                    return frame

    async def closed(self, timeout: float = WAIT) -> int | None:
        """Read until the socket closes; returns the close code."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type is aiohttp.WSMsgType.CLOSE:
                    return int(msg.data)  # the code the server sent in its close frame
                if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    return self.ws.close_code
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self.seen.append(json.loads(msg.data))

    async def close(self) -> None:
        await self.ws.close()


@dataclass
class World:
    admin: Staff
    facilitator: Staff
    group: dict[str, Any]
    patients: list[dict[str, Any]]
    tokens: list[str]


class Api:
    def __init__(self, client: TestClient, redis: Redis, clock: ManualClock, settings: Settings) -> None:
        self.client = client
        self.redis = redis
        self.clock = clock
        self.settings = settings

    async def staff(self, username: str, role: Role, password: str = "correct horse battery", **kw: Any) -> Staff:
        user = await create_user(self.redis, username, password, role, **kw)
        return await self.login(username, password, user.id)

    async def login(self, username: str, password: str, user_id: str = "") -> Staff:
        resp = await self.client.post("/api/v1/login", json={"username": username, "password": password})
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        cookie = resp.cookies[COOKIE_NAME].value
        self.client.session.cookie_jar.clear()
        return Staff(user_id or body["user"]["id"], cookie, body["csrf_token"], username)

    async def request(self, staff: Staff | None, method: str, path: str, body: Any = None,
                      expect: int | None = 200, raw: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        hdrs = dict(headers or {})
        if staff is not None:
            hdrs["Cookie"] = f"{COOKIE_NAME}={staff.cookie}"
            hdrs.setdefault("X-CSRF-Token", staff.csrf)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        resp = await self.client.request(method, path, data=data, headers=hdrs)
        text = await resp.text()
        self.client.session.cookie_jar.clear()
        if expect is not None:
            assert resp.status == expect, f"{method} {path}: {resp.status} {text}"
        try:
            return json.loads(text) if text else None
        except ValueError:
            return text

    async def post(self, staff: Staff | None, path: str, body: Any = None, expect: int | None = 200) -> Any:
        return await self.request(staff, "POST", f"/api/v1{path}", body if body is not None else {}, expect)

    async def get(self, staff: Staff | None, path: str, expect: int | None = 200) -> Any:
        return await self.request(staff, "GET", f"/api/v1{path}", None, expect)

    async def world(self, patients: int = 3, **group: Any) -> World:
        admin = await self.staff("admin", Role.ADMIN)
        facilitator = await self.staff("dana", Role.FACILITATOR, name="Dana W.", npi="1234567893")
        created = await self.post(admin, "/groups", {
            "name": "Evening DBT", "program": "IOP", "facilitator_ids": [facilitator.user_id],
            "timezone": "America/Chicago", **group,
        }, expect=201)
        people, tokens = [], []
        for i in range(patients):
            patient = await self.post(admin, "/patients", {"display_name": f"Patient {i}"}, expect=201)
            enrollment = await self.post(admin, f"/groups/{created['id']}/enrollments",
                                         {"patient_id": patient["id"]}, expect=201)
            people.append({**patient, "enrollment_id": enrollment["id"]})
            tokens.append(enrollment["join_url"].rsplit("/j/", 1)[1])
        return World(admin, facilitator, created, people, tokens)

    async def ws(self, staff: Staff | None = None, **kw: Any) -> Socket:
        headers = {"Cookie": f"{COOKIE_NAME}={staff.cookie}"} if staff else {}
        kw.setdefault("autoping", False)  # Socket.next answers pings (see there)
        ws = await self.client.ws_connect("/api/v1/ws", headers=headers, **kw)
        return Socket(ws)

    async def patient(self, token: str, location: str = "home", expect: str | None = "waiting", **kw: Any) -> Socket:
        sock = await self.ws(**kw)
        await sock.send({"type": "hello", "token": token, "location": location})
        if expect:
            await sock.until(expect)
        return sock

    async def staff_socket(self, staff: Staff, **hello: str) -> Socket:
        sock = await self.ws(staff)
        await sock.send({"type": "hello", **hello})
        await sock.until("waiting_list")
        return sock

    async def open(self, world: World) -> str:
        session = await self.post(world.facilitator, f"/groups/{world.group['id']}/sessions", expect=201)
        return str(session["id"])

    async def events(self, staff: Staff, session_id: str) -> list[dict[str, Any]]:
        return list((await self.get(staff, f"/sessions/{session_id}/events"))["events"])


def metric_samples(text: str) -> dict[str, float]:
    """Prometheus text as {'name{label="value",...}': value}, labels sorted by name."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def scrape(client: TestClient) -> dict[str, float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    return metric_samples(await resp.text())
