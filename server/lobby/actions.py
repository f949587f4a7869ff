"""What staff do to a group's door through the HTTP API, by name, so that the process that
receives the request can have it run by the process that hosts the door (`Lobby.act`).

Each action takes the door and JSON arguments and returns JSON. `loaded` actions run under the
door's lock on its state as Redis has it (`Door.run`); the others touch only what the door
holds in memory (`Door.run_unloaded`) and are skipped when no process hosts the group.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from server.lobby.door import Door

Args = dict[str, Any]


@dataclass(frozen=True)
class Action:
    run: Callable[[Door, Args], Awaitable[Any]]
    loaded: bool = True  # run on the state loaded from Redis; else memory only, and only if hosted


async def _message(door: Door, a: Args) -> int:
    return door.message_waiting(a["session_id"], a["text"], a.get("patient_id"))


async def _revoke_link(door: Door, a: Args) -> None:
    door.revoke_link(a["patient_id"])


async def _tell_staff(door: Door, a: Args) -> None:
    door.tell_staff(a["frame"])


ACTIONS: dict[str, Action] = {
    "open": Action(lambda door, a: door.open_session(a["by"])),
    "describe": Action(lambda door, a: door.describe_if_open(a["session_id"])),
    "admit": Action(lambda door, a: door.admit(a["session_id"], a.get("patient_ids"), a["by"])),
    "decline": Action(lambda door, a: door.decline(a["session_id"], a["patient_id"], a.get("message"), a["by"])),
    "remove": Action(lambda door, a: door.remove(a["session_id"], a["patient_id"], a.get("reason"), a["by"])),
    "send_back": Action(lambda door, a: door.send_back(a["session_id"], a["patient_id"], a["by"])),
    "mute": Action(lambda door, a: door.mute(a["session_id"], a["patient_id"], a["by"])),
    "mute_all": Action(lambda door, a: door.mute_all(a["session_id"], a["by"])),
    "message": Action(_message),
    "allow_screen": Action(lambda door, a: door.allow_screen(a["session_id"], a["patient_id"], a["allowed"], a["by"])),
    "set_chat": Action(lambda door, a: door.set_chat(a["session_id"], a["enabled"], a["by"])),
    "end": Action(lambda door, a: door.end(a["session_id"], a["by"])),
    "group_changed": Action(lambda door, a: door.reload_group(), loaded=False),
    "revoke_link": Action(_revoke_link, loaded=False),
    "tell_staff": Action(_tell_staff, loaded=False),
}
