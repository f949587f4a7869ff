"""One group's door: who is connected, who waits, who is in the open session.

Every change runs under the door's lock, is applied by the pure state machine, and is
committed to Redis in one MULTI/EXEC (patient states and attendance events together) before
any client hears of it. If the commit fails (Redis down), the in-memory state is dropped and
reloaded from Redis on the next use, so nothing half-written survives.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from server.audit import Action, AuditLog
from server.clinic.groups import brand_of, get_group, next_meeting
from server.clinic.patients import patients_by_id
from server.clock import Clock, iso, to_ms
from server.errors import ApiError, conflict, not_found
from server.ids import new_id
from server.lobby.machine import Event, Patient, RuleViolation, Session, Status
from server.lobby.persist import describe_session, load_session, write_changes
from server.lobby.presence import Presence, Staff, participants, waiting_list
from server.media.room import MediaRoom, MediaRooms
from server.metrics import Metrics
from server.realtime.connection import CLOSE_FORBIDDEN, CLOSE_INVALID_TOKEN, CLOSE_REPLACED, Connection
from server.store import keys, sessions
from server.store.connection import Redis

NOT_YET_OPEN = "The session has not started yet. You will be moved to the waiting room when it opens."


class Door:
    def __init__(
        self, group_id: str, redis: Redis, clock: Clock, audit: AuditLog, metrics: Metrics, grace_seconds: float
    ) -> None:
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
        self.early: dict[str, tuple[int, str | None]] = {}  # checked in before open: (at, location)
        self.on_end: Callable[[str], Awaitable[None]] | None = None  # attendance finalisation
        self.media: MediaRooms | None = None  # the session's media plane, when this process has one
        self.ice_servers: list[dict[str, Any]] = []  # handed to clients on admission
        self.empty_since: int | None = None  # for the automatic end
        # Patients whose connection has gone but whose departure is not yet in Redis:
        # patient id -> (when, voluntary). Kept in memory first, so a Redis outage may delay
        # the record but never moves its time (see depart and settle).
        self.departures: dict[str, tuple[int, bool]] = {}
        # The last media state recorded for a participant who does not publish (yet), by
        # (session id, participant id).
        self.media_recorded: dict[tuple[str, str], tuple[bool, bool]] = {}
        self.check_ins: dict[str, collections.deque[int]] = {}  # recent hellos (ms) per patient
        self.check_ins_per_minute = 10

    # -- loading and committing ------------------------------------------------------------

    async def load(self) -> None:
        if self.loaded:
            return
        group = await get_group(self.redis, self.group_id)
        if group is None:
            raise not_found("group")
        self.group = group
        self.session = None
        session_id = await self.redis.get(keys.group_open_session(self.group_id))
        if session_id:
            self.session = await load_session(self.redis, session_id, self.grace_ms)
        early = await self.redis.hgetall(keys.group_early(self.group_id))
        self.early = {}
        for pid, raw in early.items():
            data = json.loads(raw)
            if pid in self.presence.patients:
                self.early[pid] = (data["at"], data.get("location"))
        # Patients whose connection did not survive a restart are dropped at the last moment
        # this server was known to hold their connection (the session's alive mark).
        if self.session:
            stale = [pid for pid, p in self.session.patients.items()
                     if p.status in (Status.WAITING, Status.IN_SESSION)
                     and pid not in self.presence.patients and pid not in self.departures]
            alive = await sessions.alive_at(self.redis, self.session.session_id)
            last_heard = min(alive, to_ms(self.clock.now())) if alive else to_ms(self.clock.now())
            events: list[Event] = []
            for pid in stale:
                events += self.session.drop(pid, last_heard)
            if events:
                await self._commit(events, stale)
        self.loaded = True

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

    async def settle(self) -> None:
        """Commit departures kept in memory (after a Redis outage, say): at their own times."""
        await self.run(_nothing)

    async def _settle_departures(self) -> None:
        for patient_id, (at, voluntary) in list(self.departures.items()):
            if self.session is None:
                await self.redis.hdel(keys.group_early(self.group_id), patient_id)
                if self.early.pop(patient_id, None) is not None:
                    self.schedule_push("waiting_list")
            else:
                session = self.session
                events = session.leave(patient_id, at) if voluntary else session.drop(patient_id, at)
                if events:
                    await self._commit(events, [patient_id])
                    self.schedule_push("waiting_list", "roster")
            del self.departures[patient_id]

    # -- what clients see ------------------------------------------------------------------

    def waiting_list(self) -> list[dict[str, Any]]:
        return waiting_list(self.session, self.early, self.presence)

    def participants(self) -> list[dict[str, Any]]:
        return participants(self.session, self.presence)

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

    def _render(self, what: str) -> tuple[list[Connection] | set[Connection], dict[str, Any]] | None:
        if what == "waiting_list":
            staff = self.presence.staff_conns()
            return (staff, {"type": "waiting_list", "waiting": self.waiting_list()}) if staff else None
        return self.presence.in_session(self.session), {"type": "roster", "participants": self.participants()}

    # -- media ---------------------------------------------------------------------------

    def media_room(self) -> MediaRoom | None:
        if self.media is None or self.session is None:
            return None
        return self.media.room(self.session.session_id, self._record_media_state)

    def media_members(self) -> dict[str, Connection]:
        """Who may send and receive media now: staff in the session, admitted patients online."""
        members = {staff.user_id: conn for conn, staff in self.presence.staff.items()}  # newest wins
        members.update(self.presence.admitted(self.session))
        return members

    def _tell_admitted(self, conn: Connection, session_id: str) -> None:
        conn.told_admitted = True  # from now on it gets rosters (never one before this frame)
        self.presence.send(conn, {"type": "admitted", "session_id": session_id, "ice_servers": self.ice_servers})

    async def _record_media_state(self, pid: str, is_patient: bool, audio: bool, video: bool) -> None:
        async def record() -> None:
            if self.session is not None:
                await self._commit([self._media_event(pid, is_patient, audio, video)], [])

        await self.run(record)

    def _media_event(self, pid: str, is_patient: bool, audio: bool, video: bool) -> Event:
        assert self.session is not None
        event: Event = {"type": "media_state", "session_id": self.session.session_id,
                        "at": to_ms(self.clock.now()), "audio": audio, "video": video}
        event["patient_id" if is_patient else "user_id"] = pid
        return event

    # -- patients ------------------------------------------------------------------------

    async def patient_hello(self, conn: Connection, patient_id: str, display_name: str, location: str | None) -> None:
        now = to_ms(self.clock.now())
        self._count_check_in(patient_id, now)
        self.presence.names[patient_id] = display_name
        older = self.presence.patients.get(patient_id)
        if self.session is None:
            await self.redis.hset(keys.group_early(self.group_id), patient_id,
                                  json.dumps({"at": now, "location": location}))
            self._replace(older, conn, patient_id)
            self.early[patient_id] = (now, location)
            self.presence.send(conn, self.waiting_message(patient_id))
            self.schedule_push("waiting_list")
            return
        events = self.session.check_in(patient_id, now, location)
        await self._commit(events, [patient_id])
        self._replace(older, conn, patient_id)
        if self.session.patients[patient_id].status is Status.IN_SESSION:
            self.schedule_push("roster")  # media first, then the frame (see admit)
            self._tell_admitted(conn, self.session.session_id)
        else:
            self.presence.send(conn, self.waiting_message(patient_id))
        self.schedule_push("waiting_list")

    def _count_check_in(self, patient_id: str, now: int) -> None:
        """At most `check_ins_per_minute` hellos of one patient a minute: a check-in/leave loop
        cannot ring the facilitator's chime without end (the patient is asked to wait)."""
        recent = self.check_ins.setdefault(patient_id, collections.deque())
        while recent and now - recent[0] >= 60_000:
            recent.popleft()
        if len(recent) >= self.check_ins_per_minute:
            raise ApiError(429, "rate_limited", "too many check-ins; wait a minute and try again")
        recent.append(now)

    def _replace(self, older: Connection | None, newer: Connection, patient_id: str) -> None:
        if older is not None and older is not newer:
            older.replaced = True
            self.presence.send(older, {"type": "error", "code": "replaced",
                               "message": "this link was opened in another window"})
            older.close(CLOSE_REPLACED, "replaced")
        self.presence.patients[patient_id] = newer

    def depart(self, conn: Connection, voluntary: bool) -> bool:
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

    async def patient_left(self, conn: Connection, voluntary: bool) -> None:
        if self.depart(conn, voluntary):
            await self.settle()

    async def media_state(self, conn: Connection, audio: bool, video: bool) -> None:
        """The participant's own report; once they publish, the media room weighs it with the tracks."""
        pid = conn.patient_id or conn.user_id
        if self.session is None or pid is None:
            return
        room = self.media_room()
        if room is not None and room.declare(pid, audio, video):
            return
        said = (self.session.session_id, pid)
        if self.media_recorded.get(said) == (audio, video):
            return  # the same again is not an event: a repeating client cannot grow the record
        await self._commit([self._media_event(pid, conn.patient_id is not None, audio, video)], [])
        self.media_recorded[said] = (audio, video)

    def is_admitted(self, conn: Connection) -> bool:
        if conn.user_id is not None:
            return conn in self.presence.staff
        return (
            self.session is not None and conn.patient_id is not None
            and self.presence.patients.get(conn.patient_id) is conn
            and self.session.patients.get(conn.patient_id, _OUT).status is Status.IN_SESSION
        )

    # -- staff ---------------------------------------------------------------------------

    async def staff_join(self, conn: Connection, staff: Staff, session_id: str | None) -> None:
        """Staff hello: with a session id they take part in it; without, they watch the door."""
        if session_id is not None:
            if self.session is None or self.session.session_id != session_id:
                raise ApiError(409, "session_not_open", "that session is not open")
            self.presence.staff[conn] = staff
            # Staff take part from their hello (no `admitted`): their first roster carries the ICE servers.
            self.presence.send(conn, {"type": "roster", "participants": self.participants(),
                                      "ice_servers": self.ice_servers})
            self.schedule_push("roster")
        else:
            self.presence.watchers[conn] = staff
        self.presence.send(conn, {"type": "waiting_list", "waiting": self.waiting_list()})

    def recheck_staff(self, facilitator_ids: Iterable[str]) -> None:
        """The group's facilitators changed: staff who may no longer run it are cut off now,
        so an open console stops receiving patients' names."""
        allowed = set(facilitator_ids)
        people = {**self.presence.watchers, **self.presence.staff}
        for conn, staff in people.items():
            if staff.role != "admin" and staff.user_id not in allowed:
                self.presence.send(conn, {"type": "error", "code": "forbidden",
                                  "message": "you no longer facilitate this group"})
                conn.close(CLOSE_FORBIDDEN, "forbidden")
                self.staff_left(conn)

    def staff_left(self, conn: Connection) -> None:
        self.presence.watchers.pop(conn, None)
        if self.presence.staff.pop(conn, None) is not None:
            self.schedule_push("roster")

    async def open_session(self, user_id: str) -> dict[str, Any]:
        if self.session is not None:
            raise conflict("session_open", "a session of this group is already open",
                           session_id=self.session.session_id)
        now = to_ms(self.clock.now())
        session_id = new_id("ses")
        if not await self.redis.set(keys.group_open_session(self.group_id), session_id, nx=True):
            self.loaded = False
            raise conflict("session_open", "a session of this group is already open",
                           session_id=await self.redis.get(keys.group_open_session(self.group_id)))
        session = Session(session_id, started_at=now, grace_ms=self.grace_ms)
        events: list[Event] = []
        for pid, (at, location) in sorted(self.early.items(), key=lambda kv: kv[1][0]):
            events += session.check_in(pid, now, location, checked_in_at=at)
        self.session = session

        def write(pipe: Any) -> None:
            sessions.write_opened(pipe, self.group_id, session_id, now, user_id)
            pipe.delete(keys.group_early(self.group_id))

        try:
            await self._commit(events, list(self.early), write,
                               [Action("session.open", user_id, {"session_id": session_id, "group_id": self.group_id})])
        except BaseException:
            await self.redis.delete(keys.group_open_session(self.group_id))
            raise
        self.early = {}
        for watcher in self.presence.watchers:
            self.presence.send(watcher, {"type": "session_opened", "session_id": session_id})
        for pid in session.with_status(Status.WAITING):
            if (conn := self.presence.patients.get(pid)) is not None:
                self.presence.send(conn, self.waiting_message(pid))
        self.schedule_push("waiting_list", "roster")
        return self.describe()

    async def mark_alive(self) -> None:
        """Record that this process still holds the session's connections (see load)."""
        if self.session is not None and any(not c.closing for c in self.presence.patients.values()):
            await sessions.mark_alive(self.redis, self.session.session_id, to_ms(self.clock.now()))

    def require_session(self, session_id: str) -> Session:
        if self.session is None or self.session.session_id != session_id:
            # The session exists (its group was found) but is not the open one: it has ended.
            raise conflict("session_ended", "the session has ended")
        return self.session

    async def admit(self, session_id: str, patient_ids: list[str] | None, by: str) -> list[str]:
        """Admit the named patients (or everyone waiting): all or none."""
        session = self.require_session(session_id)
        targets = session.with_status(Status.WAITING) if patient_ids is None else patient_ids
        for pid in targets:
            p = session.patients.get(pid)
            if p is None or p.status is not Status.WAITING:
                raise ApiError(409, "not_waiting", f"patient {pid} is not in the waiting room")
        capacity = int(self.group.get("capacity", 15))
        if len(session.with_status(Status.IN_SESSION)) + len(targets) > capacity:
            raise ApiError(409, "capacity_reached", f"the group's capacity of {capacity} would be exceeded")
        now = to_ms(self.clock.now())
        events: list[Event] = []
        for pid in targets:
            events += session.admit(pid, now, by)
        await self._commit(events, targets, audit=[
            Action("patient.admit", by, {"session_id": session_id, "patient_id": pid}) for pid in targets])
        # Media membership follows the admission before anyone hears of it: a client that
        # offers the instant its `admitted` arrives must find itself in the media room.
        self.schedule_push("waiting_list", "roster")
        for pid in targets:
            if (conn := self.presence.patients.get(pid)) is not None:
                self._tell_admitted(conn, session_id)
        return targets

    async def decline(self, session_id: str, patient_id: str, message: str | None, by: str) -> None:
        session = self.require_session(session_id)
        events = self._apply(lambda: session.decline(patient_id, to_ms(self.clock.now()), by))
        await self._commit(events, [patient_id], audit=[
            Action("patient.decline", by, {"session_id": session_id, "patient_id": patient_id})])
        frame: dict[str, Any] = {"type": "declined"}
        if message:
            frame["message"] = message
        self._disconnect(patient_id, frame)
        self.schedule_push("waiting_list")

    async def remove(self, session_id: str, patient_id: str, reason: str | None, by: str) -> None:
        session = self.require_session(session_id)
        events = self._apply(lambda: session.remove(patient_id, to_ms(self.clock.now()), by))
        await self._commit(events, [patient_id], audit=[
            Action("patient.remove", by, {"session_id": session_id, "patient_id": patient_id})])
        frame: dict[str, Any] = {"type": "removed"}
        if reason:
            frame["reason"] = reason
        self._disconnect(patient_id, frame)
        self.schedule_push("roster")

    async def send_back(self, session_id: str, patient_id: str, by: str) -> None:
        session = self.require_session(session_id)
        events = self._apply(lambda: session.send_back(patient_id, to_ms(self.clock.now()), by))
        await self._commit(events, [patient_id], audit=[
            Action("patient.send_back", by, {"session_id": session_id, "patient_id": patient_id})])
        if (conn := self.presence.patients.get(patient_id)) is not None:
            conn.told_admitted = False
            self.presence.send(conn, {"type": "sent_back"})
            self.presence.send(conn, self.waiting_message(patient_id))
        self.schedule_push("waiting_list", "roster")

    async def mute(self, session_id: str, patient_id: str, by: str) -> None:
        session = self.require_session(session_id)
        if session.patients.get(patient_id, _OUT).status is not Status.IN_SESSION:
            raise ApiError(409, "not_in_session", f"patient {patient_id} is not in the session")
        await self.audit.append("patient.mute", by, session_id=session_id, patient_id=patient_id)
        if (room := self.media_room()) is not None:
            room.mute(patient_id)
        if (conn := self.presence.patients.get(patient_id)) is not None:
            self.presence.send(conn, {"type": "muted"})

    def message_waiting(self, session_id: str, text: str) -> int:
        session = self.require_session(session_id)
        sent = 0
        for pid in session.with_status(Status.WAITING):
            if (conn := self.presence.patients.get(pid)) is not None:
                self.presence.send(conn, {"type": "message", "text": text})
                sent += 1
        return sent

    async def end(self, session_id: str, by: str) -> dict[str, Any]:
        session = self.require_session(session_id)
        now = to_ms(self.clock.now())
        events = self._apply(lambda: session.end(now))

        def write(pipe: Any) -> None:
            sessions.write_ended(pipe, session_id, now, by)
            pipe.delete(keys.group_open_session(self.group_id))

        await self._commit(events, list(session.patients), write,
                           [Action("session.end", by, {"session_id": session_id, "group_id": self.group_id})])
        if self.media is not None:
            self.media.end(session_id)  # forwarding stops now; peer connections close in the background
        described = self.describe()
        patients = [self.presence.patients[p] for p in session.patients if p in self.presence.patients]
        for conn in set(self.presence.in_session(self.session) + patients):
            self.presence.send(conn, {"type": "session_ended"})
            conn.close(1000, "session ended")
        for conn in self.presence.watchers:
            self.presence.send(conn, {"type": "session_ended"})
        self.presence.patients = {pid: c for pid, c in self.presence.patients.items() if pid not in session.patients}
        self.presence.staff = {}
        self.session = None
        self.media_recorded = {}
        self.schedule_push("waiting_list")
        if self.on_end is not None:
            await self.on_end(session_id)
        return described

    def revoke_link(self, patient_id: str) -> None:
        """The patient's link was rotated or their enrolment ended: close what it opened."""
        conn = self.presence.patients.get(patient_id)
        if conn is not None:
            self.presence.send(conn, {"type": "error", "code": "invalid_token",
                                      "message": "this link is no longer valid"})
            conn.close(CLOSE_INVALID_TOKEN, "invalid_token")

    def _apply(self, action: Callable[[], list[Event]]) -> list[Event]:
        try:
            return action()
        except RuleViolation as exc:
            raise ApiError(409, exc.code, exc.message) from None

    def _disconnect(self, patient_id: str, frame: dict[str, Any]) -> None:
        conn = self.presence.patients.pop(patient_id, None)
        if conn is not None:
            self.presence.send(conn, frame)
            conn.close(1000, str(frame["type"]))

    def counts(self) -> DoorCounts:
        """What this door holds now, for the process's gauges."""
        waiting = len(self.early) + sum(1 for pid in (self.session.with_status(Status.WAITING) if self.session else ())
                                        if pid in self.presence.patients)
        return DoorCounts(waiting=waiting, in_session=sum(1 for _ in self.presence.admitted(self.session)),
                          connections=len(self.presence.patients), open=self.session is not None)

    async def end_if_abandoned(self, after_seconds: float) -> None:
        """End a session whose facilitator has gone and whose room has been empty for a while."""
        session = self.session
        now = to_ms(self.clock.now())
        if session is None or self.presence.staff or any(self.presence.admitted(session)):
            self.empty_since = None
        elif self.empty_since is None:
            self.empty_since = now
        elif now - self.empty_since >= to_ms(after_seconds):
            session_id = session.session_id
            with contextlib.suppress(ApiError):
                await self.run(lambda: self.end(session_id, "system:auto_end"))

    def close_all(self, code: int, reason: str) -> None:
        self.presence.close_all(code, reason)

    def describe(self) -> dict[str, Any]:
        assert self.session is not None
        return describe_session(self.session, self.group_id, self.presence.names)

    async def remember_names(self) -> None:
        if self.session is None:
            return
        missing = [pid for pid in self.session.patients if pid not in self.presence.names]
        for pid, patient in (await patients_by_id(self.redis, missing)).items():
            self.presence.names[pid] = patient["display_name"]


@dataclass(frozen=True)
class DoorCounts:
    waiting: int  # connected and waiting, before the opening too
    in_session: int  # admitted and connected
    connections: int  # patients' WebSockets
    open: bool


_OUT = Patient(Status.OUT, since=0)


async def _nothing() -> None:
    return None
