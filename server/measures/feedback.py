"""Feedback on a session: one question, a rating 1-5 and an optional comment, once per patient.

After `session_ended` each attending patient gets `feedback_request`; they may answer once, up
to FEEDBACK_HOURS after the session ended, over the WebSocket (`feedback`) or from the page of
their link (`POST /j/{token}/feedback`, when the socket has closed). Only patients present in the
session (a `joined` event) may answer. Averages per group and per facilitator (who opened the
session) are on the admin pages.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from server import validation as v
from server.attendance.reports import attended
from server.clock import iso
from server.errors import ApiError, ErrorCode, bad_request, forbidden
from server.store import keys, sessions
from server.store.connection import Redis

QUESTION = "How helpful was today's group?"
FEEDBACK_HOURS = 24
MAX_COMMENT = 1000

# One answer per patient per session: the answer and its index entry, or nothing.
_ONCE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[5])
return 1
"""


def request_frame(session_id: str) -> dict[str, Any]:
    return {"type": "feedback_request", "session_id": session_id, "question": QUESTION}


@dataclass(frozen=True)
class Feedback:
    session_id: str
    group_id: str
    patient_id: str
    facilitator_id: str | None  # who opened the session
    rating: int
    comment: str | None
    at_ms: int

    def public(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "group_id": self.group_id, "patient_id": self.patient_id,
                "facilitator_id": self.facilitator_id, "rating": self.rating, "comment": self.comment,
                "at": iso(self.at_ms)}


def checked(rating: Any, comment: Any) -> tuple[int, str | None]:
    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        raise bad_request("rating: a whole number from 1 to 5")
    text = v.text({"comment": comment}, "comment", MAX_COMMENT, required=False, min_len=0, multiline=True)
    return rating, (text.strip() or None) if text is not None else None


async def submit(redis: Redis, session_id: Any, patient_id: str, group_id: str, rating: Any, comment: Any,
                 now_ms: int) -> Feedback:
    """Store a patient's answer about a session they attended; 409 `already_answered` the second time."""
    rating, comment = checked(rating, comment)
    session_id = v.an_id(session_id, "session_id")
    record = await sessions.read(redis, session_id)
    if record is None or record.group_id != group_id:
        raise ApiError(404, ErrorCode.NOT_FOUND, "no such session in your group")
    if record.ended_at is None:
        raise bad_request("session_id: that session has not ended yet")
    if now_ms - record.ended_at > FEEDBACK_HOURS * 3600 * 1000:
        raise bad_request(f"session_id: feedback is taken up to {FEEDBACK_HOURS} hours after a session")
    if not await attended(redis, session_id, patient_id):
        raise forbidden("feedback is for the patients who took part in the session")
    answer = Feedback(session_id, group_id, patient_id, record.opened_by, rating, comment, now_ms)
    stored = json.dumps(answer.__dict__, separators=(",", ":"))
    if not await redis.eval(_ONCE, 3, keys.feedback(session_id), keys.feedback_by_time(),
                            keys.patient_feedback(patient_id), patient_id, stored, now_ms,
                            f"{session_id}:{patient_id}", session_id):
        raise ApiError(409, ErrorCode.ALREADY_ANSWERED, "you have already answered for this session")
    return answer


async def awaiting(redis: Redis, patient_id: str, group_id: str, now_ms: int) -> str | None:
    """The group's most recent session this patient attended, ended within FEEDBACK_HOURS and not yet
    rated by them: what the page of their link asks about (None when there is none)."""
    since = now_ms - FEEDBACK_HOURS * 3600 * 1000
    recent = await redis.zrevrangebyscore(keys.group_sessions(group_id), "+inf", since - 24 * 3600 * 1000,
                                          start=0, num=5)
    for record in await sessions.read_many(redis, list(recent)):
        if record.ended_at is None or record.ended_at < since:
            continue
        if await redis.hexists(keys.feedback(record.id), patient_id):
            return None  # the latest one is answered: never ask about an older one
        if await attended(redis, record.id, patient_id):
            return record.id
    return None


async def between(redis: Redis, low_ms: int, high_ms: int, group_id: str | None = None) -> list[Feedback]:
    """Feedback given in [low_ms, high_ms), oldest first."""
    members = await redis.zrangebyscore(keys.feedback_by_time(), low_ms, f"({high_ms}")
    by_session: dict[str, list[str]] = defaultdict(list)
    for member in members:
        session_id, patient_id = member.split(":", 1)
        by_session[session_id].append(patient_id)
    out = []
    for session_id, patient_ids in by_session.items():
        for raw in await redis.hmget(keys.feedback(session_id), patient_ids):
            if raw:
                answer = Feedback(**json.loads(raw))
                if group_id is None or answer.group_id == group_id:
                    out.append(answer)
    return sorted(out, key=lambda f: (f.at_ms, f.session_id, f.patient_id))


def day_range_ms(start: date, end: date) -> tuple[int, int]:
    """[start, end] as UTC days, in ms (end inclusive)."""
    low = datetime(start.year, start.month, start.day, tzinfo=UTC)
    return int(low.timestamp() * 1000), int((datetime(end.year, end.month, end.day, tzinfo=UTC)
                                             + timedelta(days=1)).timestamp() * 1000)


@dataclass(frozen=True)
class Average:
    key: str  # a group id or a facilitator id
    answers: int
    mean: float


def averages(answers: list[Feedback], by: str) -> list[Average]:
    """Mean rating per group (`by="group_id"`) or per facilitator (`by="facilitator_id"`)."""
    ratings: dict[str, list[int]] = defaultdict(list)
    for answer in answers:
        ratings[str(getattr(answer, by) or "")].append(answer.rating)
    return [Average(key, len(values), round(sum(values) / len(values), 2)) for key, values in sorted(ratings.items())]


async def ratings_of(redis: Redis, patient_id: str) -> list[int]:
    """The patient's ratings, oldest first."""
    session_ids = await redis.zrange(keys.patient_feedback(patient_id), 0, -1)
    async with redis.pipeline(transaction=False) as pipe:
        for session_id in session_ids:
            pipe.hget(keys.feedback(session_id), patient_id)
        raws = await pipe.execute() if session_ids else []
    return [int(json.loads(raw)["rating"]) for raw in raws if raw]


def forget(pipe: Any, answer: Feedback) -> None:
    pipe.hdel(keys.feedback(answer.session_id), answer.patient_id)
    pipe.zrem(keys.feedback_by_time(), f"{answer.session_id}:{answer.patient_id}")
    pipe.zrem(keys.patient_feedback(answer.patient_id), answer.session_id)
