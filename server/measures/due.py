"""When a patient is due a questionnaire, and the `questionnaire` frames that offer it.

A group lists its questionnaires with a cadence (`questionnaires` in POST/PATCH /groups). A
patient who checks in is due an instrument when their last answer to it, or their last skip, in
any group, is:

- `session`: none since the group's previous session ended (an answer given before this session
  opened counts for it);
- `week` / `2weeks`: at least 7 / 14 calendar days ago, in the group's timezone (so a Monday
  group asks every Monday, whatever the hour).

An unanswered offer is offered again (same id) at the next check-in while it is answerable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from server.clinic.groups import CADENCE_DAYS
from server.measures import store
from server.measures.instruments import INSTRUMENTS
from server.store import keys, sessions
from server.store.connection import Redis


def is_due(every: str, last_ms: int | None, now_ms: int, zone: ZoneInfo, previous_end_ms: int | None) -> bool:
    """Pure: whether an instrument answered (or skipped) last at `last_ms` is due again at `now_ms`."""
    if last_ms is None:
        return True
    if every == "session":
        return previous_end_ms is not None and last_ms <= previous_end_ms
    last_day = datetime.fromtimestamp(last_ms / 1000, tz=zone).date()
    today = datetime.fromtimestamp(now_ms / 1000, tz=zone).date()
    return (today - last_day).days >= CADENCE_DAYS[every]


async def previous_session_end(redis: Redis, group_id: str) -> int | None:
    """When the group's most recent ended session ended (ms), or None."""
    recent = await redis.zrevrange(keys.group_sessions(group_id), 0, 2)
    ends = [r.ended_at for r in await sessions.read_many(redis, list(recent)) if r.ended_at is not None]
    return max(ends) if ends else None


def frame(questionnaire: store.Questionnaire) -> dict[str, Any]:
    instrument = INSTRUMENTS[questionnaire.instrument]
    return {"type": "questionnaire", "id": questionnaire.id, "instrument": instrument.name,
            "title": instrument.title, "question": instrument.question, "items": instrument.frame_items()}


async def due_frames(redis: Redis, group: dict[str, Any], patient_id: str, session_id: str | None,
                     now_ms: int) -> list[dict[str, Any]]:
    """The `questionnaire` frames for a patient who has just checked in (offers stored as needed)."""
    wanted = group.get("questionnaires") or []
    if not wanted:
        return []
    history = await store.questionnaires_of(redis, patient_id)
    zone = ZoneInfo(group.get("timezone") or "UTC")
    previous_end: int | None = None
    if any(w["every"] == "session" for w in wanted):
        previous_end = await previous_session_end(redis, group["id"])
    frames = []
    for entry in wanted:
        instrument = entry["instrument"]
        pending = await store.open_offer(redis, patient_id, instrument)
        if pending is not None:
            frames.append(frame(pending))
            continue
        closed = [q.closed_at for q in history if q.instrument == instrument and q.closed_at is not None]
        if is_due(entry["every"], max(closed) if closed else None, now_ms, zone, previous_end):
            frames.append(frame(await store.offer(redis, patient_id, group["id"], instrument, session_id, now_ms)))
    return frames
