"""All doors of this server process, found by group or by session."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from server.attendance.finalise import finalise, finalise_pending
from server.audit import AuditLog
from server.clock import Clock, iso, to_ms
from server.errors import ApiError, not_found
from server.lobby.door import Door
from server.lobby.machine import Status
from server.lobby.persist import describe_session, load_session
from server.media.room import MediaRooms
from server.metrics import Metrics
from server.store import keys, sessions
from server.store.connection import UNAVAILABLE, Redis
from server.tasks import stop_if_cancelled


class Lobby:
    def __init__(
        self, redis: Redis, clock: Clock, audit: AuditLog, metrics: Metrics, grace_seconds: float,
        auto_end_seconds: float = 900.0, media: MediaRooms | None = None,
        ice_servers: list[dict[str, Any]] | None = None, check_ins_per_minute: int = 10,
    ) -> None:
        self.check_ins_per_minute = check_ins_per_minute
        self.redis = redis
        self.media = media
        self.ice_servers = ice_servers or []
        self.auto_end_seconds = auto_end_seconds
        self.delivery_wake = asyncio.Event()  # set when new billing records are queued
        self.clock = clock
        self.audit = audit
        self.metrics = metrics
        self.grace_seconds = grace_seconds
        self.doors: dict[str, Door] = {}
        metrics.gauge("porchlight_patients_waiting", "Patients connected and waiting (incl. before opening).",
                      lambda: sum(self._count(d, Status.WAITING) + len(d.early) for d in self.doors.values()))
        metrics.gauge("porchlight_patients_in_session", "Patients admitted and connected.",
                      lambda: sum(self._count(d, Status.IN_SESSION) for d in self.doors.values()))
        metrics.gauge("porchlight_sessions_open", "Sessions open in this process.",
                      lambda: sum(1 for d in self.doors.values() if d.session is not None))
        if media is not None:
            metrics.gauge("porchlight_media_participants", "Participants with media in this process.",
                          lambda: sum(len(r.members) for r in media.rooms.values()))
        metrics.gauge("porchlight_ws_connections", "Patient WebSocket connections.",
                      lambda: sum(len(d.patient_conns) for d in self.doors.values()))

    @staticmethod
    def _count(door: Door, status: Status) -> int:
        if door.session is None:
            return 0
        return sum(1 for pid in door.session.with_status(status) if pid in door.patient_conns)

    async def keep_alive_marks(self, interval: float) -> None:
        """Every heartbeat interval, one round of `tend` (the first after adopting leftovers)."""
        with contextlib.suppress(*UNAVAILABLE):
            await self.adopt_open_sessions()
        while True:
            await asyncio.sleep(interval)
            await self.tend()
            stop_if_cancelled()

    async def tend(self) -> None:
        """One round: commit departures held back by a Redis outage, mark open sessions alive,
        end empty ones, finalise leftovers. Each step waits for Redis again next round."""
        for door in list(self.doors.values()):
            with contextlib.suppress(*UNAVAILABLE):
                if door.departures:
                    await door.settle()
                await door.mark_alive()
                await self._end_if_abandoned(door)
        with contextlib.suppress(*UNAVAILABLE):
            if await finalise_pending(self.redis, self.clock, self.audit):
                self.delivery_wake.set()

    async def adopt_open_sessions(self) -> int:
        """Load every group with an open session, so one left by a previous process (a crash)
        is watched here: its orphaned patients dropped, and it ends by itself if nobody returns."""
        group_ids = await self.redis.zrange(keys.groups(), 0, -1)
        if not group_ids:
            return 0
        open_ids = await self.redis.mget([keys.group_open_session(g) for g in group_ids])
        adopted = 0
        for group_id, session_id in zip(group_ids, open_ids, strict=True):
            if session_id and group_id not in self.doors:
                door = self.door(group_id)
                async with door.lock:
                    await door.load()
                adopted += 1
        return adopted

    async def _end_if_abandoned(self, door: Door) -> None:
        """End a session whose facilitator has gone and whose room has been empty for a while."""
        session = door.session
        if session is None:
            door.empty_since = None
            return
        empty = not door.staff_in_session and not any(
            pid in door.patient_conns for pid in session.with_status(Status.IN_SESSION))
        now = to_ms(self.clock.now())
        if not empty:
            door.empty_since = None
        elif door.empty_since is None:
            door.empty_since = now
        elif now - door.empty_since >= to_ms(self.auto_end_seconds):
            session_id = session.session_id
            with contextlib.suppress(ApiError):
                await door.run(lambda: door.end(session_id, "system:auto_end"))

    async def finalise(self, session_id: str) -> None:
        with contextlib.suppress(*UNAVAILABLE):  # left pending: the sweeper finalises it later
            if await finalise(self.redis, self.clock, self.audit, session_id):
                self.delivery_wake.set()

    def door(self, group_id: str) -> Door:
        door = self.doors.get(group_id)
        if door is None:
            door = self.doors[group_id] = Door(
                group_id, self.redis, self.clock, self.audit, self.metrics, self.grace_seconds
            )
            door.on_end = self.finalise
            door.media = self.media
            door.ice_servers = self.ice_servers
            door.check_ins_per_minute = self.check_ins_per_minute
        return door

    async def session_group(self, session_id: str) -> str:
        group_id = await sessions.group_of(self.redis, session_id)
        if group_id is None:
            raise not_found("session")
        return group_id

    async def events(self, session_id: str) -> list[dict[str, Any]]:
        raws = await self.redis.lrange(keys.session_events(session_id), 0, -1)
        out = []
        for raw in raws:
            event = json.loads(raw)
            event["at"] = iso(event["at"])
            if "checked_in_at" in event:
                event["checked_in_at"] = iso(event["checked_in_at"])
            out.append(event)
        return out

    async def describe(self, session_id: str) -> dict[str, Any]:
        """A session as GET /sessions/{id} shows it, open or ended."""
        group_id = await self.session_group(session_id)
        door = self.door(group_id)
        async with door.lock:
            await door.load()
            if door.session is not None and door.session.session_id == session_id:
                await door.remember_names()
                return door.describe()
        session = await load_session(self.redis, session_id, 0)
        if session is None:
            raise not_found("session")
        return describe_session(session, group_id, {})
