"""One group's door: the admission orchestration. Patients check in, wait, are admitted,
declined, sent back or removed; staff join, watch and open or end the session. Each action is
a rule of the state machine applied to `DoorState` and committed with its audit entry.
"""

from __future__ import annotations

import collections
import contextlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from server.audit import Action
from server.clinic.groups import get_group
from server.clinic.patients import patients_by_id
from server.clock import to_ms
from server.errors import ApiError, conflict
from server.ids import new_id
from server.lobby.in_session import SessionActions
from server.lobby.machine import Event, RuleViolation, Session, Status
from server.lobby.peer import CLOSE_FORBIDDEN, CLOSE_INVALID_TOKEN, CLOSE_REPLACED, Peer
from server.lobby.persist import describe_session
from server.lobby.presence import Staff
from server.lobby.questionnaires import MeasureActions
from server.lobby.state import OUT
from server.measures import feedback
from server.store import keys, sessions


class Door(SessionActions, MeasureActions):
    # -- patients ------------------------------------------------------------------------

    async def patient_hello(self, conn: Peer, patient_id: str, display_name: str, location: str | None) -> None:
        now = to_ms(self.clock.now())
        self._count_check_in(patient_id, now)
        self.presence.set_name(patient_id, display_name)
        older = self.presence.patients.get(patient_id)
        if patient_id in self.orphans and self.session is not None:
            # A new connection after a takeover: the old one did end, when last known alive.
            await self._drop([patient_id], self.orphans.pop(patient_id))
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

    async def reattach(self, conn: Peer, patient_id: str, display_name: str, location: str | None) -> None:
        """A connection that never ended comes to this door after a takeover: nothing happened to
        the patient, so nothing is recorded; an admitted one starts their media again here."""
        self.presence.set_name(patient_id, display_name)
        status = self.session.patients.get(patient_id, OUT).status if self.session is not None else None
        held = (patient_id in self.orphans or patient_id in self.early
                or status in (Status.WAITING, Status.IN_SESSION) and patient_id not in self.presence.patients)
        if not held:  # dropped meanwhile (it came too late): an ordinary check-in
            await self.patient_hello(conn, patient_id, display_name, location)
            return
        self.orphans.pop(patient_id, None)
        self._replace(self.presence.patients.get(patient_id), conn, patient_id)
        if status is Status.IN_SESSION:
            assert self.session is not None
            self.schedule_push("roster")  # media membership first (see admit)
            conn.told_admitted = True
            self.presence.send(conn, {"type": "media_reset"})
            if not self.tools.facilitator_present:
                self.presence.send(conn, {"type": "facilitator_away"})
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

    def _replace(self, older: Peer | None, newer: Peer, patient_id: str) -> None:
        if older is not None and older is not newer:
            older.replaced = True
            self.presence.send(older, {"type": "error", "code": "replaced",
                               "message": "this link was opened in another window"})
            older.close(CLOSE_REPLACED, "replaced")
        self.presence.patients[patient_id] = newer

    async def patient_left(self, conn: Peer, voluntary: bool) -> None:
        if self.depart(conn, voluntary):
            await self.settle()

    async def media_state(self, conn: Peer, audio: bool, video: bool,
                          devices: tuple[bool, bool] = (True, True)) -> None:
        """The participant's own report; once they publish, the media room weighs it with the tracks.
        `devices`: whether they have a microphone and a camera at all (shown in the roster)."""
        pid = conn.patient_id or conn.user_id
        if self.session is None or pid is None:
            return
        if self.tools.set_devices(pid, devices):
            self.schedule_push("roster")
        room = self.media_room()
        if room is not None and room.declare(pid, audio, video):
            return
        said = (self.session.session_id, pid)
        if self.media_recorded.get(said) == (audio, video):
            return  # the same again is not an event: a repeating client cannot grow the record
        await self._commit([self._media_event(pid, conn.patient_id is not None, audio, video)], [])
        self.media_recorded[said] = (audio, video)
        self.schedule_push("roster")

    # -- staff ---------------------------------------------------------------------------

    async def staff_join(self, conn: Peer, staff: Staff, session_id: str | None, reattach: bool = False) -> None:
        """Staff hello: with a session id they take part in it; without, they watch the door.
        `reattach`: a connection that came over from a process that went away restarts its media."""
        if session_id is not None:
            if self.session is None or self.session.session_id != session_id:
                raise ApiError(409, "session_not_open", "that session is not open")
            self.presence.staff[conn] = staff
            # Staff take part from their hello (no `admitted`): their first roster carries the ICE servers.
            self.presence.send(conn, {"type": "roster", "participants": self.participants(),
                                      "ice_servers": self.ice.for_participant(staff.user_id)})
            self.schedule_push("roster")
            self._facilitators_changed()
            if reattach:
                self.presence.send(conn, {"type": "media_reset"})
        else:
            self.presence.watchers[conn] = staff
        self.presence.send_text(conn, self.waiting_list_frame())

    async def reload_group(self) -> None:
        """The group was edited (by any process): take the new version; staff who may no longer
        run it are cut off."""
        group = await get_group(self.redis, self.group_id)
        if group is not None:
            self.group_changed(group)
            self.recheck_staff(group.get("facilitator_ids", []))

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

    async def staff_gone(self, conn: Peer) -> None:
        """A staff socket ended (no Redis needed: it held only presence)."""
        async with self.lock:
            self.staff_left(conn)

    async def describe_if_open(self, session_id: str) -> dict[str, Any] | None:
        """The open session as GET /sessions/{id} shows it (under the lock), or None."""
        if self.session is None or self.session.session_id != session_id:
            return None
        await self.remember_names()
        return self.describe()

    def staff_left(self, conn: Peer) -> None:
        self.presence.watchers.pop(conn, None)
        if self.presence.staff.pop(conn, None) is not None:
            self.schedule_push("roster")
            self._facilitators_changed()

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
            sessions.write_opened(pipe, self.group_id, session_id, now, user_id, self.node_id)
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

    async def admit(self, session_id: str, patient_ids: list[str] | None, by: str) -> list[str]:
        """Admit the named patients (or everyone waiting): all or none."""
        session = self.require_session(session_id)
        targets = session.with_status(Status.WAITING) if patient_ids is None else patient_ids
        for pid in targets:
            p = session.patients.get(pid)
            if p is None or p.status is not Status.WAITING:
                raise ApiError(409, "not_waiting", f"patient {pid} is not in the waiting room")
        capacity = int(self.group.get("capacity", 15))
        if session.count(Status.IN_SESSION) + len(targets) > capacity:
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
        self.tools.forget(patient_id)
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
        self.tools.forget(patient_id)
        if (conn := self.presence.patients.get(patient_id)) is not None:
            conn.told_admitted = False
            self.presence.send(conn, {"type": "sent_back"})
            self.presence.send(conn, self.waiting_message(patient_id))
        self.schedule_push("waiting_list", "roster")

    async def end(self, session_id: str, by: str) -> dict[str, Any]:
        session = self.require_session(session_id)
        now = to_ms(self.clock.now())
        attending = set(session.with_status(Status.IN_SESSION))
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
            if conn.patient_id in attending:
                self.presence.send(conn, feedback.request_frame(session_id))
            conn.close(1000, "session ended")
        for conn in self.presence.watchers:
            self.presence.send(conn, {"type": "session_ended"})
        self.presence.patients = {pid: c for pid, c in self.presence.patients.items() if pid not in session.patients}
        self.presence.staff = {}
        self.session = None
        self.media_recorded = {}
        self.tools.reset()
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

    def close_all(self, code: int, reason: str, held_here_only: bool = False) -> None:
        self.presence.close_all(code, reason, held_here_only)

    def describe(self) -> dict[str, Any]:
        assert self.session is not None
        return describe_session(self.session, self.group_id, self.presence.names)

    async def remember_names(self) -> None:
        if self.session is None:
            return
        missing = [pid for pid in self.session.patients if pid not in self.presence.names]
        for pid, patient in (await patients_by_id(self.redis, missing)).items():
            self.presence.set_name(pid, patient["display_name"])


