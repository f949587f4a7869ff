"""Measures and feedback at the door: the questionnaires a patient is due, offered after their
`waiting`; their answers (a PHQ-9 item 9 above 0 alerts every staff socket of the group); the
feedback after a session. A part of `Door` (lobby/door.py); the records are server/measures'.

The offer is looked up right after the check-in, outside the door's lock (a few Redis reads and
a write, only for groups that ask questionnaires: admissions are not held up by them), and
before the socket's next frame is handled, so its frames follow `waiting` in order. A Redis
failure there costs the offer, never the check-in: it is made again at the next one.
"""

from __future__ import annotations

import contextlib
from typing import Any

from server.clinic.groups import brand_of
from server.clock import to_ms
from server.lobby.peer import Peer
from server.lobby.state import DoorState
from server.measures import answers, feedback
from server.measures.due import due_frames
from server.store.connection import UNAVAILABLE


class MeasureActions(DoorState):
    def _open_session_id(self) -> str | None:
        return self.session.session_id if self.session is not None else None

    async def offer_questionnaires(self, conn: Peer, patient_id: str) -> None:
        """Send `conn` the group's questionnaires this patient is due (none when the group has none)."""
        if not self.group.get("questionnaires"):
            return
        with contextlib.suppress(*UNAVAILABLE):
            for frame in await due_frames(self.redis, self.group, patient_id, self._open_session_id(),
                                          to_ms(self.clock.now())):
                self.presence.send(conn, frame)

    async def answer_questionnaire(self, patient_id: str, questionnaire_id: str,
                                   given: dict[str, Any]) -> dict[str, Any]:
        """Answers to an offered questionnaire, taken while waiting and after admission alike (a
        patient admitted halfway through may finish it, until it expires: server/measures/store.py).
        Returns the `questionnaire_saved` frame for the patient."""
        saved = await answers.answer(self.redis, self.audit, questionnaire_id, patient_id, given,
                                     self._open_session_id(), to_ms(self.clock.now()))
        reply: dict[str, Any] = {"type": "questionnaire_saved", "id": saved.questionnaire.id}
        if saved.alert is not None:
            self.on_alert()
            # The patient is shown where to get help now (never a score); every staff socket of
            # the group is alerted at once.
            brand = brand_of(self.group)
            reply["crisis"] = {"support_phone": brand.get("support_phone", ""), "crisis_line": brand["crisis_line"]}
            alert = saved.alert.public(self.presence.name(patient_id))
            self.presence.broadcast(self.presence.staff_conns(), {"type": "safety_alert", "alert": alert})
        return reply

    async def skip_questionnaire(self, patient_id: str, questionnaire_id: str) -> dict[str, Any]:
        skipped = await answers.skip(self.redis, questionnaire_id, patient_id, self._open_session_id(),
                                     to_ms(self.clock.now()))
        return {"type": "questionnaire_saved", "id": skipped.id, "skipped": True}

    async def give_feedback(self, patient_id: str, session_id: str, rating: Any, comment: Any) -> dict[str, Any]:
        """The answer to `feedback_request`: once per session, up to a day after it ended."""
        given = await feedback.submit(self.redis, session_id, patient_id, self.group_id, rating, comment,
                                      to_ms(self.clock.now()))
        return {"type": "feedback_saved", "session_id": given.session_id}

    def tell_staff(self, frame: dict[str, Any]) -> None:
        """A frame for every console connected to the group (a safety alert acknowledged elsewhere)."""
        self.presence.broadcast(self.presence.staff_conns(), frame)
