"""Questionnaires offered in the waiting room: after a patient's `waiting`, the ones they are due.

Looked up right after the check-in, outside the door's lock (a few Redis reads and a write, only
for groups that ask questionnaires: admissions are not held up by them), and before the socket's
next frame is read, so the frames follow `waiting` in order. A Redis failure here costs the
offer, never the check-in: it is made again at the next one.
"""

from __future__ import annotations

import contextlib
from typing import Any

from server.clock import Clock, to_ms
from server.lobby.machine import Session
from server.lobby.peer import Peer
from server.lobby.presence import Presence
from server.measures.due import due_frames
from server.store.connection import UNAVAILABLE, Redis


async def offer(redis: Redis, clock: Clock, presence: Presence, conn: Peer, patient_id: str,
                group: dict[str, Any], session: Session | None) -> None:
    """Send `conn` the group's questionnaires this patient is due (none when the group has none)."""
    if not group.get("questionnaires"):
        return
    session_id = session.session_id if session is not None else None
    with contextlib.suppress(*UNAVAILABLE):
        for frame in await due_frames(redis, group, patient_id, session_id, to_ms(clock.now())):
            presence.send(conn, frame)
