"""Three past weeks of the demo group's meetings, so a new demo has attendance to look at.

Each meeting goes through the same state machine, the same Redis writes and the same
finalisation as a live session; only the clock is set to the meeting's time. The patients
differ the way real ones do: one comes to everything, one is often late and drops once, one
stops coming (so the dropout-risk flag has something to show).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from server.attendance.finalise import finalise
from server.audit import AuditLog
from server.clinic.calendar import local_today, meetings_between
from server.clock import ManualClock, to_ms
from server.ids import new_id
from server.lobby.machine import Event, Session
from server.lobby.persist import write_changes
from server.store.connection import Redis
from server.store.sessions import write_ended, write_opened

MINUTE = 60_000
WEEKS = 3


def _visits(patient_index: int, meeting_index: int, meetings: int) -> list[tuple[int, int]]:
    """(joined, left) minutes after the start for one patient at one meeting; [] means absent."""
    if patient_index == 0:  # comes to everything, on time, stays to the end
        return [(0, 180)]
    if patient_index == 1:  # often late; once the connection drops and they come back
        late = 25 if meeting_index % 3 == 1 else 4
        return [(late, 70), (71, 180)] if meeting_index % 4 == 2 else [(late, 180)]
    # Comes at first, leaves early more and more, then stops coming.
    if meeting_index >= meetings - 3:
        return []
    return [(2, 180 - 20 * meeting_index)]


def _media(session: Session, pid: str, at: int, audio: bool, video: bool) -> Event:
    return {"type": "media_state", "session_id": session.session_id, "at": at, "audio": audio, "video": video,
            "patient_id": pid}


async def seed_history(redis: Redis, audit: AuditLog, group: dict[str, Any], patient_ids: list[str],
                       facilitator_id: str, now: float) -> int:
    """Record and finalise the group's meetings of the last WEEKS weeks; returns how many."""
    today = local_today(group, now)
    meetings = meetings_between(group, today - timedelta(weeks=WEEKS), today - timedelta(days=1))
    for index, meeting in enumerate(meetings):
        start = to_ms(meeting.start.timestamp())
        end = start + meeting.minutes * MINUTE
        session = Session(new_id("ses"), started_at=start, grace_ms=2 * MINUTE)
        events: list[Event] = []
        for p, pid in enumerate(patient_ids):
            for visit, (joined, left) in enumerate(_visits(p, index, len(meetings))):
                arrived = start + joined * MINUTE
                checked_in = arrived - 3 * MINUTE if visit == 0 else arrived
                events += session.check_in(pid, max(start, checked_in), "home" if p != 1 else "other",
                                           checked_in_at=checked_in)
                if visit == 0:
                    events += session.admit(pid, arrived, facilitator_id)
                events.append(_media(session, pid, arrived, audio=True, video=True))
                if p == 1 and index % 3 == 0:  # on the bus for an hour: sound only
                    events.append(_media(session, pid, arrived + 60 * MINUTE, audio=True, video=False))
                if left < meeting.minutes:
                    events += session.drop(pid, start + left * MINUTE)
        events.sort(key=lambda e: e["at"])
        events += session.end(end)
        async with redis.pipeline(transaction=True) as pipe:
            write_opened(pipe, group["id"], session.session_id, start, facilitator_id)
            write_changes(pipe, session, events, patient_ids)
            write_ended(pipe, session.session_id, end, facilitator_id)
            await pipe.execute()
        await finalise(redis, ManualClock(end / 1000 + 60), audit, session.session_id)
    return len(meetings)
