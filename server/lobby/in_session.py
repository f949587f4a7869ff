"""What staff and participants do inside a running session, beyond admission: mute, screen
permission, messages to the waiting room, raised hands, chat, mute all. A part of `Door`
(lobby/door.py), on the same state and under the same lock.
"""

from __future__ import annotations

from typing import Any

from server.clock import iso, to_ms
from server.errors import ApiError, conflict
from server.lobby.machine import Session, Status
from server.lobby.peer import Peer
from server.lobby.state import OUT, DoorState


class SessionActions(DoorState):
    def is_admitted(self, conn: Peer) -> bool:
        if conn.user_id is not None:
            return conn in self.presence.staff
        return (
            self.session is not None and conn.patient_id is not None
            and self.presence.patients.get(conn.patient_id) is conn
            and self.session.patients.get(conn.patient_id, OUT).status is Status.IN_SESSION
        )

    def require_session(self, session_id: str) -> Session:
        if self.session is None or self.session.session_id != session_id:
            # The session exists (its group was found) but is not the open one: it has ended.
            raise conflict("session_ended", "the session has ended")
        return self.session

    def _require_in_session(self, session_id: str, patient_id: str) -> None:
        if self.require_session(session_id).patients.get(patient_id, OUT).status is not Status.IN_SESSION:
            raise ApiError(409, "not_in_session", f"patient {patient_id} is not in the session")

    async def mute(self, session_id: str, patient_id: str, by: str) -> None:
        self._require_in_session(session_id, patient_id)
        await self.audit.append("patient.mute", by, session_id=session_id, patient_id=patient_id)
        if (room := self.media_room()) is not None:
            room.mute(patient_id)
        if (conn := self.presence.patients.get(patient_id)) is not None:
            self.presence.send(conn, {"type": "muted"})

    async def allow_screen(self, session_id: str, patient_id: str, allowed: bool, by: str) -> None:
        """Let a patient share their screen, or stop them (staff always may; CONTRACT.md v1.1)."""
        self._require_in_session(session_id, patient_id)
        await self.audit.append("patient.screen_share", by, session_id=session_id, patient_id=patient_id,
                                allowed=allowed)
        (self.tools.screen_allowed.add if allowed else self.tools.screen_allowed.discard)(patient_id)
        if not allowed and (room := self.media_room()) is not None:
            room.stop_screen(patient_id)
        if (conn := self.presence.patients.get(patient_id)) is not None:
            self.presence.send(conn, {"type": "screen_share", "allowed": allowed})
        self.schedule_push("roster")

    def message_waiting(self, session_id: str, text: str, patient_id: str | None = None) -> int:
        """A message to everyone waiting, or to one waiting patient."""
        session = self.require_session(session_id)
        if patient_id is not None and session.patients.get(patient_id, OUT).status is not Status.WAITING:
            raise ApiError(409, "not_waiting", f"patient {patient_id} is not in the waiting room")
        sent = 0
        for pid in [patient_id] if patient_id is not None else session.with_status(Status.WAITING):
            if (conn := self.presence.patients.get(pid)) is not None:
                self.presence.send(conn, {"type": "message", "text": text})
                sent += 1
        return sent

    # -- the session's tools: hands, chat, mute all ---------------------------------------

    def hand(self, conn: Peer, raised: bool) -> None:
        pid = conn.patient_id or conn.user_id
        if pid is None or (pid in self.tools.hands) == raised:
            return
        (self.tools.hands.add if raised else self.tools.hands.discard)(pid)
        self.schedule_push("roster")

    def chat(self, conn: Peer, text: Any, to: Any) -> None:
        """A chat message from a participant (or a waiting patient, to the staff only)."""
        staff = self.presence.staff.get(conn)
        patient = conn.patient_id is not None
        if not patient and staff is None:
            raise ApiError(409, "not_admitted", "chat is for the people in the session")
        private = self.tools.check_chat(text, to, patient=patient, admitted=self.is_admitted(conn))
        pid = conn.patient_id or conn.user_id or ""
        sender = ({"id": pid, "display_name": self.presence.name(pid), "role": "patient"} if staff is None
                  else {"id": staff.user_id, "display_name": staff.name, "role": staff.role})
        frame = self.tools.chat_frame(sender, text, iso(to_ms(self.clock.now())) or "", private)
        recipients = (self.presence.staff_conns() | {conn}) if private \
            else set(self.presence.in_session(self.session)) | {conn}
        self.presence.broadcast(recipients, frame)

    async def set_chat(self, session_id: str, enabled: bool, by: str) -> None:
        self.require_session(session_id)
        self.tools.chat_enabled = enabled
        await self.audit.append("session.chat", by, session_id=session_id, enabled=enabled)

    async def mute_all(self, session_id: str, by: str) -> list[str]:
        session = self.require_session(session_id)
        muted = session.with_status(Status.IN_SESSION)
        await self.audit.append("patient.mute_all", by, session_id=session_id, patients=len(muted))
        room = self.media_room()
        for pid in muted:
            if room is not None:
                room.mute(pid)
            if (conn := self.presence.patients.get(pid)) is not None:
                self.presence.send(conn, {"type": "muted"})
        return muted
