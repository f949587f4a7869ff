"""One group's live state, kept in step with Redis: the open session as the pure state
machine holds it, who is connected (presence), departures not yet written, and the media room.

Every change runs under the lock, is applied by the state machine, and is committed to Redis
in one MULTI/EXEC (patient states and attendance events together) before any client hears of
it. If the commit fails (Redis down), the in-memory state is dropped and reloaded from Redis
on the next use, so nothing half-written survives. The actions on it are `Door`'s.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from server.audit import Action, AuditLog
from server.clinic.groups import brand_of, get_group, next_meeting
from server.clock import Clock, iso, to_ms
from server.errors import not_found
from server.lobby.machine import Event, Patient, Session, Status
from server.lobby.peer import Peer
from server.lobby.persist import load_session, write_changes
from server.lobby.presence import Presence, WaitingList, participants
from server.lobby.tools import SessionTools
from server.media.ice import IceServers
from server.media.room import MediaRoom, MediaRooms
from server.metrics import Metrics
from server.store import keys, sessions
from server.store.connection import Redis

NOT_YET_OPEN = "The session has not started yet. You will be moved to the waiting room when it opens."


class DoorState:
    """One group's live state (see the module's docstring); `Door` adds the actions."""

    def __init__(
        self, group_id: str, redis: Redis, clock: Clock, audit: AuditLog, metrics: Metrics, grace_seconds: float,
        *, on_end: Callable[[str], Awaitable[None]] | None = None, media: MediaRooms | None = None,
        ice_servers: IceServers | None = None, check_ins_per_minute: int = 10,
        node_id: str | None = None, crowded: Callable[[], bool] = lambda: False,
        on_alert: Callable[[], None] = lambda: None,
    ) -> None:
        self.node_id = node_id  # this process, named in the records of the sessions it opens
        self.group_id = group_id
        self.redis = redis
        self.clock = clock
        self.audit = audit
        self.metrics = metrics
        self.grace_ms = to_ms(grace_seconds)
        self.lock = asyncio.Lock()
        self.loaded = False
        self.group: dict[str, Any] = {}
        self.session: Session | None = None
        self.presence = Presence(metrics, self._render)
        self._waiting_list = WaitingList()
        self.early: dict[str, tuple[int, str | None]] = {}  # checked in before open: (at, location)
        self.on_end = on_end  # attendance finalisation
        self.on_alert = on_alert  # a safety alert's event was queued: wake its delivery
        self.media = media  # the session's media plane, when this process has one
        self.ice = ice_servers or IceServers((), None, clock)  # handed to each client on admission
        self.empty_since: int | None = None  # for the automatic end
        # Patients whose connection has gone but whose departure is not yet in Redis:
        # patient id -> (when, voluntary). Kept in memory first, so a Redis outage may delay
        # the record but never moves its time (see depart and settle).
        self.departures: dict[str, tuple[int, bool]] = {}
        # The last media state recorded for a participant who does not publish (yet), by
        # (session id, participant id).
        self.media_recorded: dict[tuple[str, str], tuple[bool, bool]] = {}
        self.check_ins: dict[str, collections.deque[int]] = {}  # recent hellos (ms) per patient
        self.check_ins_per_minute = check_ins_per_minute
        self.tools = SessionTools()  # hands, chat, whether a facilitator is there
        # With several processes, a door taken over from a process that died (or drained) waits a
        # moment for the sockets other processes hold to attach again (`reattach`) before it
        # drops whoever did not come back, at the last moment they were known to be connected.
        # Might sockets of this group be held elsewhere, or be about to attach (after a takeover)?
        self.crowded = crowded
        self.orphans: dict[str, int] = {}  # patient id -> when last known connected (ms)
        self.orphans_since = 0

    # -- loading and committing ------------------------------------------------------------

    async def load(self) -> None:
        if self.loaded:
            return
        # Read everything first, then replace the state in one step: frames are checked against
        # it outside the lock (is_admitted), and must never see it half-loaded (no session).
        group = await get_group(self.redis, self.group_id)
        if group is None:
            raise not_found("group")
        session_id = await self.redis.get(keys.group_open_session(self.group_id))
        session = await load_session(self.redis, session_id, self.grace_ms) if session_id else None
        if session is not None and self.node_id is not None:
            await sessions.set_media_node(self.redis, session.session_id, self.node_id)  # hosted here now
        early = await self.redis.hgetall(keys.group_early(self.group_id))
        self.group, self.session = group, session
        crowded = self.crowded()
        self.early = {pid: (data["at"], data.get("location"))
                      for pid, data in ((pid, json.loads(raw)) for pid, raw in early.items())
                      if pid in self.presence.patients or crowded}
        now = to_ms(self.clock.now())
        if crowded:
            self.orphans = {pid: now for pid in self.early if pid not in self.presence.patients}
            self.orphans_since = now
        # Patients whose connection did not survive a restart are dropped at the last moment
        # this server was known to hold their connection (the session's alive mark).
        if self.session:
            stale = [pid for pid, p in self.session.patients.items()
                     if p.status in (Status.WAITING, Status.IN_SESSION)
                     and pid not in self.presence.patients and pid not in self.departures]
            alive = await sessions.alive_at(self.redis, self.session.session_id)
            last_heard = min(alive, now) if alive else now
            if crowded:  # other processes may hold some of them: they get a moment to say so
                self.orphans.update({pid: last_heard for pid in stale})
            else:
                await self._drop(stale, last_heard)
        self.loaded = True

    async def _drop(self, patient_ids: list[str], last_heard: int) -> None:
        assert self.session is not None
        events: list[Event] = []
        for pid in patient_ids:
            events += self.session.drop(pid, last_heard)
        if events:
            await self._commit(events, patient_ids)

    async def drop_orphans(self, window_ms: int) -> None:
        """After a takeover: whoever has not come back within the window is dropped (or, before
        the opening, forgotten) at the moment they were last known connected."""
        async def drop() -> None:
            if not self.orphans or to_ms(self.clock.now()) - self.orphans_since < window_ms:
                return
            orphans, self.orphans = self.orphans, {}
            for pid, at in orphans.items():
                if pid in self.presence.patients:
                    continue
                if self.session is None:
                    if self.early.pop(pid, None) is not None:
                        await self.redis.hdel(keys.group_early(self.group_id), pid)
                else:
                    await self._drop([pid], at)
            self.schedule_push("waiting_list", "roster")

        if self.orphans:  # (most rounds: nothing to do, and no lock taken)
            await self.run(drop)

    async def _commit(
        self, events: list[Event], patient_ids: list[str], extra: Callable[[Any], None] | None = None,
        audit: list[Action] | None = None,
    ) -> None:
        """Write changed patient states, their events and the audit entries of the decision
        in one transaction."""
        session = self.session
        assert session is not None

        def write(pipe: Any) -> None:
            write_changes(pipe, session, events, patient_ids)
            if extra is not None:
                extra(pipe)

        try:
            if audit:
                await self.audit.commit_with(audit, write)
            else:
                async with self.redis.pipeline(transaction=True) as pipe:
                    write(pipe)
                    await pipe.execute()
        except BaseException:
            self.loaded = False  # reload the last committed state on next use
            raise

    async def run(self, action: Callable[[], Awaitable[Any]]) -> Any:
        async with self.lock:
            await self.load()
            await self._settle_departures()  # before anything that could follow them (a new hello)
            return await action()

    async def run_unloaded(self, action: Callable[[], Any]) -> Any:
        """Under the lock, without loading from Redis first: for what touches only memory (closing
        a revoked link's socket) or is written by the caller itself (a group change)."""
        async with self.lock:
            result = action()
            return await result if inspect.isawaitable(result) else result

    @property
    def unsettled(self) -> bool:
        """Departures wait in memory for Redis (see `settle`)."""
        return bool(self.departures)

    def group_changed(self, group: dict[str, Any]) -> None:
        """The door caches its group; a change must reach the waiting room at once."""
        if self.loaded:
            self.group = group

    async def settle(self) -> None:
        """Commit departures kept in memory (after a Redis outage, say): at their own times."""
        await self.run(_nothing)

    async def _settle_departures(self) -> None:
        """All departures held so far in one write: when many sockets close at once (a restart,
        a network blip) the first action commits them together, not one transaction each."""
        if not self.departures:
            return
        departed = list(self.departures.items())
        if self.session is None:
            await self.redis.hdel(keys.group_early(self.group_id), *[pid for pid, _ in departed])
            forgotten = [self.early.pop(pid, None) for pid, _ in departed]
            if any(entry is not None for entry in forgotten):
                self.schedule_push("waiting_list")
        else:
            session = self.session
            events: list[Event] = []
            for patient_id, (at, voluntary) in departed:
                events += session.leave(patient_id, at) if voluntary else session.drop(patient_id, at)
            if events:
                await self._commit(events, [pid for pid, _ in departed])
                self.schedule_push("waiting_list", "roster")
        for patient_id, _ in departed:
            del self.departures[patient_id]

    # -- what clients see ------------------------------------------------------------------

    def waiting_list_frame(self) -> str:
        renamed, self.presence.renamed = self.presence.renamed, set()
        return self._waiting_list.frame(self.session, self.early, self.presence.name, renamed)

    def participants(self) -> list[dict[str, Any]]:
        return participants(self.session, self.presence, self._roster_extras)

    def _roster_extras(self, pid: str) -> dict[str, Any]:
        media = (self.media_recorded.get((self.session.session_id, pid), (False, False))
                 if self.session is not None else (False, False))
        room = self.media.get(self.session.session_id) if self.media is not None and self.session else None
        return self.tools.roster_extras(pid, media, room is not None and room.sharing(pid))

    def waiting_message(self, patient_id: str, message: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "waiting",
            "session_id": self.session.session_id if self.session else None,
            "group": {"name": self.group["name"]},
            "brand": brand_of(self.group),
        }
        # Since when this patient has been waiting, so a reloaded page keeps its clock.
        since = (self.session.patients[patient_id].since
                 if self.session is not None and patient_id in self.session.patients
                 else self.early.get(patient_id, (None, None))[0])
        if since is not None:
            out["waiting_since"] = iso(since)
        if self.session is None:
            out["message"] = message or NOT_YET_OPEN
            out["next_start"] = next_meeting(self.group, self.clock.now())
        elif message:
            out["message"] = message
        return out

    def schedule_push(self, *what: str) -> None:
        """Coalesce waiting_list / roster pushes: a burst of changes sends one of each."""
        if "roster" in what and (room := self.media_room()) is not None:
            room.sync(self.media_members())  # media follows admission at once, not at the push
        self.presence.schedule(*what)

    def _render(self, what: str) -> tuple[list[Peer] | set[Peer], dict[str, Any] | str] | None:
        if what == "waiting_list":
            staff = self.presence.staff_conns()
            return (staff, self.waiting_list_frame()) if staff else None
        return self.presence.in_session(self.session), {"type": "roster", "participants": self.participants()}

    # -- media ---------------------------------------------------------------------------

    def media_room(self) -> MediaRoom | None:
        if self.media is None or self.session is None:
            return None
        return self.media.room(self.session.session_id, self._record_media_state,
                               self.tools.screen_allowed.__contains__, lambda: self.presence.schedule("roster"))

    def media_members(self) -> dict[str, Peer]:
        """Who may send and receive media now: staff in the session, admitted patients online."""
        members = {staff.user_id: conn for conn, staff in self.presence.staff.items()}  # newest wins
        members.update(self.presence.admitted(self.session))
        return members

    def _tell_admitted(self, conn: Peer, session_id: str) -> None:
        conn.told_admitted = True  # from now on it gets rosters (never one before this frame)
        ice_servers = self.ice.for_participant(conn.user_id or conn.patient_id or "")  # a TURN credential of its own
        self.presence.send(conn, {"type": "admitted", "session_id": session_id, "ice_servers": ice_servers})
        if not self.tools.facilitator_present:
            self.presence.send(conn, {"type": "facilitator_away"})

    def _facilitators_changed(self) -> None:
        """After staff come or go: admitted patients hear when no facilitator is left, and when one is back."""
        ids = set(self.group.get("facilitator_ids", []))
        present = any(s.user_id in ids for s in self.presence.staff.values())
        told = [conn for _, conn in self.presence.admitted(self.session) if conn.told_admitted]
        self.tools.facilitator_change(present, told, self.presence)

    async def _record_media_state(self, pid: str, is_patient: bool, audio: bool, video: bool) -> None:
        async def record() -> None:
            if self.session is not None:
                await self._commit([self._media_event(pid, is_patient, audio, video)], [])
                self.media_recorded[(self.session.session_id, pid)] = (audio, video)
                self.schedule_push("roster")  # the roster says who is muted or has the camera off

        await self.run(record)

    def _media_event(self, pid: str, is_patient: bool, audio: bool, video: bool) -> Event:
        assert self.session is not None
        event: Event = {"type": "media_state", "session_id": self.session.session_id,
                        "at": to_ms(self.clock.now()), "audio": audio, "video": video}
        event["patient_id" if is_patient else "user_id"] = pid
        return event

    def depart(self, conn: Peer, voluntary: bool) -> bool:
        """The patient sent `leave` (voluntary) or their connection went away: forget the
        connection now, without waiting for the lock or Redis, and remember when they left.
        The departure reaches Redis at the next `run` or `settle`."""
        patient_id = conn.patient_id
        assert patient_id is not None
        if conn.replaced or self.presence.patients.get(patient_id) is not conn:
            return False
        del self.presence.patients[patient_id]
        at = self.clock.now() if voluntary else conn.last_heard
        self.departures[patient_id] = (to_ms(at), voluntary)
        if self.media is not None and self.session is not None:
            if (room := self.media.get(self.session.session_id)) is not None:
                room.sync(self.media_members())  # their media stops now, whatever Redis does
        return True

    async def mark_alive(self) -> None:
        """Record that this process still holds the session's connections (see load)."""
        if self.session is not None and any(not c.closing for c in self.presence.patients.values()):
            await sessions.mark_alive(self.redis, self.session.session_id, to_ms(self.clock.now()))

    def reload_later(self) -> None:
        """Read the door's state from Redis again before the next action (the connections stay)."""
        self.loaded = False

    def let_go(self) -> None:
        """Another process takes this door over (a drain): stop its media here; the people
        connected through other processes attach to the new host, which loads it from Redis."""
        if self.media is not None and self.session is not None:
            self.media.end(self.session.session_id)
        self.presence.patients, self.presence.staff, self.presence.watchers = {}, {}, {}
        self.loaded = False

    def counts(self) -> DoorCounts:
        """What this door holds now, for the process's gauges."""
        waiting = len(self.early) + sum(1 for pid in (self.session.with_status(Status.WAITING) if self.session else ())
                                        if pid in self.presence.patients)
        return DoorCounts(waiting=waiting, in_session=sum(1 for _ in self.presence.admitted(self.session)),
                          connections=len(self.presence.patients), open=self.session is not None,
                          staff=len(self.presence.unique_staff()))


@dataclass(frozen=True)
class DoorCounts:
    waiting: int  # connected and waiting, before the opening too
    in_session: int  # admitted and connected
    connections: int  # patients' WebSockets
    open: bool
    staff: int  # staff taking part in the session


OUT = Patient(Status.OUT, since=0)  # who is not in the session at all


async def _nothing() -> None:
    return None

