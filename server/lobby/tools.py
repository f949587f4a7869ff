"""The tools of a running group session beyond admission: raised hands, chat, and whether a
facilitator is there. Kept in memory only: chat is not kept after the session (CONTRACT.md),
and hands and presence describe this moment.
"""

from __future__ import annotations

import itertools
from typing import Any

from server.errors import ApiError, ErrorCode
from server.lobby.peer import Peer
from server.lobby.presence import Presence

MAX_CHAT = 500


class SessionTools:
    def __init__(self) -> None:
        self.hands: set[str] = set()  # participant ids with a hand raised
        self.screen_allowed: set[str] = set()  # patients the facilitator lets share their screen
        self.devices: dict[str, tuple[bool, bool]] = {}  # participant id -> (has a microphone, a camera)
        self.chat_enabled = True
        self.facilitator_present = False
        self._ids = itertools.count(1)

    def reset(self) -> None:
        """A new session starts with none of the last one's hands, chat setting or messages."""
        self.hands.clear()
        self.screen_allowed.clear()
        self.devices.clear()
        self.chat_enabled = True
        self.facilitator_present = False

    def forget(self, patient_id: str) -> None:
        """The patient left the session (removed, sent back): a hand and a permission do not last."""
        self.hands.discard(patient_id)
        self.screen_allowed.discard(patient_id)

    def roster_extras(self, participant_id: str, media: tuple[bool, bool], sharing: bool) -> dict[str, Any]:
        microphone, camera = self.devices.get(participant_id, (True, True))
        extras = {"audio": media[0], "video": media[1], "hand": participant_id in self.hands,
                  "microphone": microphone, "camera": camera}
        if sharing:
            extras["screen"] = True
        if participant_id in self.screen_allowed:
            extras["screen_allowed"] = True
        return extras

    def set_devices(self, participant_id: str, devices: tuple[bool, bool]) -> bool:
        """True if this changes what the roster says."""
        if self.devices.get(participant_id, (True, True)) == devices:
            return False
        self.devices[participant_id] = devices
        return True

    def chat_frame(self, sender: dict[str, str], text: str, at: str, private: bool) -> dict[str, Any]:
        return {"type": "chat", "id": f"msg_{next(self._ids)}", "from": sender, "text": text, "at": at,
                "private": private}

    def check_chat(self, text: Any, to: Any, *, patient: bool, admitted: bool) -> bool:
        """Whether the message is private (to the staff); raises the refusal a client is told."""
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_CHAT:
            raise ApiError(400, ErrorCode.BAD_REQUEST, f"chat needs text of 1-{MAX_CHAT} characters")
        if to not in (None, "staff"):
            raise ApiError(400, ErrorCode.BAD_REQUEST, 'to: "staff" or absent')
        private = bool(to == "staff")
        if patient and not admitted and not private:
            raise ApiError(409, ErrorCode.NOT_ADMITTED, 'while waiting, messages go to the staff only (to: "staff")')
        if patient and not private and not self.chat_enabled:
            raise ApiError(409, ErrorCode.CHAT_DISABLED, "the facilitator has turned group chat off")
        return private

    def facilitator_change(self, present: bool, patients: list[Peer], presence: Presence) -> None:
        """Tell admitted patients when the last facilitator goes, and when one is back."""
        if present == self.facilitator_present:
            return
        self.facilitator_present = present
        presence.broadcast(patients, {"type": "facilitator_back" if present else "facilitator_away"})
