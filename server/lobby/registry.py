"""All doors of this server process, found by group or by session."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from server.attendance.finalise import finalise, finalise_pending
from server.attendance.rules import DEFAULT_MIN_ATTENDED_SECONDS
from server.audit import AuditLog
from server.billing import outbox
from server.billing.wake import Wake
from server.clock import Clock, iso, to_ms
from server.errors import not_found
from server.lobby.actions import ACTIONS, Args
from server.lobby.cluster import Cluster
from server.lobby.door import Door
from server.lobby.persist import describe_session, load_session
from server.measures import alerts
from server.media.ice import IceServers
from server.media.room import MediaRooms
from server.metrics import Metrics
from server.store import keys, sessions
from server.store.bus import Bus
from server.store.connection import UNAVAILABLE, Redis
from server.store.nodes import Load, NodeRegistry
from server.tasks import stop_if_cancelled


class Lobby:
    def __init__(
        self, redis: Redis, clock: Clock, audit: AuditLog, metrics: Metrics, grace_seconds: float,
        auto_end_seconds: float = 900.0, media: MediaRooms | None = None,
        ice_servers: IceServers | None = None, check_ins_per_minute: int = 10,
        node: NodeRegistry | None = None, bus: Bus | None = None, tick_seconds: float = 1.0,
        min_attended_seconds: int = DEFAULT_MIN_ATTENDED_SECONDS, delivery_wake: Wake | None = None,
        alert_wake: Wake | None = None,
    ) -> None:
        self.min_attended_seconds = min_attended_seconds  # attendance's short-join rule, at finalising
        self.node = node
        # With a bus, this process is one of a deployment (lobby/cluster.py).
        self.cluster = Cluster(self, node, bus, tick_seconds) if node is not None and bus is not None else None
        # Does this process hold sockets of the group that will attach to its door (realtime/relay.py)?
        self.holds_sockets: Callable[[str], bool] = lambda group_id: False
        self.draining = False  # SIGTERM: no new sessions or sockets; /readyz answers 503
        self.check_ins_per_minute = check_ins_per_minute
        self.redis = redis
        self.media = media
        self.ice_servers = ice_servers
        self.auto_end_seconds = auto_end_seconds
        self.delivery_wake = delivery_wake or Wake(outbox.BILLING)  # set when new billing records are queued
        self.alert_wake = alert_wake or Wake(alerts.CHANNEL)  # set when a safety alert's event is queued
        self.clock = clock
        self.audit = audit
        self.metrics = metrics
        self.grace_seconds = grace_seconds
        self.doors: dict[str, Door] = {}
        metrics.gauge("porchlight_patients_waiting", "Patients connected and waiting (incl. before opening).",
                      lambda: sum(d.counts().waiting for d in self.doors.values()))
        metrics.gauge("porchlight_patients_in_session", "Patients admitted and connected.",
                      lambda: sum(d.counts().in_session for d in self.doors.values()))
        metrics.gauge("porchlight_sessions_open", "Sessions open in this process.",
                      lambda: sum(d.counts().open for d in self.doors.values()))
        if media is not None:
            metrics.gauge("porchlight_media_participants", "Participants with media in this process.",
                          lambda: sum(len(r.members) for r in media.rooms.values()))
        metrics.gauge("porchlight_ws_connections", "Patient WebSocket connections.",
                      lambda: sum(d.counts().connections for d in self.doors.values()))

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
                if door.unsettled:
                    await door.settle()
                await door.mark_alive()
                await door.end_if_abandoned(self.auto_end_seconds)
        with contextlib.suppress(*UNAVAILABLE):
            if await finalise_pending(self.redis, self.clock, self.audit, self.min_attended_seconds):
                self.delivery_wake.set()
        if self.node is not None:
            with contextlib.suppress(*UNAVAILABLE):
                await self.node.beat(to_ms(self.clock.now()), self.load())

    def load(self) -> Load:
        """What this process hosts now: open sessions, and the people connected to them."""
        counts = [d.counts() for d in self.doors.values()]
        return Load(sessions=sum(c.open for c in counts), participants=sum(c.in_session + c.staff for c in counts))

    async def until_empty(self) -> None:
        """After SIGTERM: return once no session here has anyone connected (the caller bounds the
        wait with PORCHLIGHT_DRAIN_SECONDS). People leave through many paths; a half-second look
        is plenty for a process that is going away."""
        while self.load().participants:  # noqa: ASYNC110
            await asyncio.sleep(0.5)

    async def adopt_open_sessions(self) -> int:
        """Load every group with an open session, so one left by a previous process (a crash)
        is watched here: its orphaned patients dropped, and it ends by itself if nobody returns.
        In a deployment, only sessions whose host has gone (see Cluster.rehome_orphaned_sessions)."""
        if self.cluster is not None:
            await self.cluster.tick()
            return 0
        group_ids = await self.redis.zrange(keys.groups(), 0, -1)
        if not group_ids:
            return 0
        open_ids = await self.redis.mget([keys.group_open_session(g) for g in group_ids])
        adopted = 0
        for group_id, session_id in zip(group_ids, open_ids, strict=True):
            if session_id and group_id not in self.doors:
                await self.door(group_id).settle()  # loads it: orphans dropped at the alive mark
                adopted += 1
        return adopted

    async def finalise(self, session_id: str) -> None:
        with contextlib.suppress(*UNAVAILABLE):  # left pending: the sweeper finalises it later
            if await finalise(self.redis, self.clock, self.audit, session_id, self.min_attended_seconds):
                self.delivery_wake.set()

    def door(self, group_id: str) -> Door:
        door = self.doors.get(group_id)
        if door is None:
            door = self.doors[group_id] = Door(
                group_id, self.redis, self.clock, self.audit, self.metrics, self.grace_seconds,
                on_end=self.finalise, media=self.media, ice_servers=self.ice_servers,
                check_ins_per_minute=self.check_ins_per_minute, node_id=self.node.node_id if self.node else None,
                crowded=lambda: self._crowded(group_id), on_alert=self.alert_wake.set,
            )
        return door

    def _crowded(self, group_id: str) -> bool:
        """Other processes alive, or sockets held here about to attach: whoever is not in the
        group's door yet gets a moment to say so before being dropped (DoorState.load)."""
        return self.cluster is not None and (self.cluster.crowded() or self.holds_sockets(group_id))

    async def act(self, group_id: str, name: str, **args: Any) -> Any:
        """A staff action on a group's door (lobby/actions.py), run by the process hosting it."""
        if self.cluster is not None:
            return await self.cluster.act(group_id, name, args)
        return await self.act_here(group_id, name, args)

    async def act_here(self, group_id: str, name: str, args: Args) -> Any:
        spec = ACTIONS[name]
        if not spec.loaded:
            hosted = self.doors.get(group_id)
            return None if hosted is None else await hosted.run_unloaded(lambda: spec.run(hosted, args))
        door = self.door(group_id)
        return await door.run(lambda: spec.run(door, args))

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
        described = await self.act(group_id, "describe", session_id=session_id)
        if described is None:
            session = await load_session(self.redis, session_id, 0)
            if session is None:
                raise not_found("session")
            described = describe_session(session, group_id, {})
        record = await sessions.read(self.redis, session_id)
        return {**described, "media_node": record.media_node if record else None}
