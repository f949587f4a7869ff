"""Questionnaires in Redis: offered, then answered or skipped. The only module that reads or
writes the measures' keys (`keys.measure`, `keys.patient_measures`, `keys.measures_by_time`,
`keys.open_questionnaire`); exports, retention and other systems' records (FHIR) read through it.

A questionnaire is stored when it is offered (instrument, time, session) and completed in place
when answered: the answers (item id -> 0-3), the score, the band, the time and the session.
Nothing else about the patient is kept. A skip is recorded as such, without answers. An offer
stays answerable for OFFER_SECONDS, whatever the patient is doing (waiting or in the group):
a patient admitted halfway through may finish it until the session ends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from server.clock import iso
from server.ids import new_id
from server.store import keys
from server.store.connection import Redis

OFFER_SECONDS = 12 * 3600
STATUSES = ("open", "answered", "skipped")

# Closes an offer once: only the holder of its open key may answer or skip it (two tabs, two answers).
_CLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Measure:
    """An answered questionnaire: what `GET /patients/{id}/measures` lists and FHIR builds on."""

    id: str
    patient_id: str
    group_id: str
    instrument: str  # "PHQ-9" | "GAD-7"
    at_ms: int  # when it was answered
    session_id: str | None  # the session open when it was answered (None before the session opened)
    answers: dict[str, int]  # item id ("1".."9") -> value 0-3, in the instrument's order
    score: int
    band: str

    @property
    def at(self) -> str:
        return iso(self.at_ms) or ""

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "instrument": self.instrument, "at": self.at, "score": self.score,
                "band": self.band, "session_id": self.session_id}


@dataclass(frozen=True)
class Questionnaire:
    """One offer and what became of it."""

    id: str
    patient_id: str
    group_id: str
    instrument: str
    offered_at: int  # ms
    offered_in: str | None  # the session open when it was offered
    status: str = "open"  # open | answered | skipped
    closed_at: int | None = None  # answered or skipped, ms
    session_id: str | None = None  # the session open when it was answered or skipped
    answers: dict[str, int] = field(default_factory=dict)
    score: int | None = None
    band: str | None = None

    @property
    def measure(self) -> Measure | None:
        if self.status != "answered" or self.closed_at is None or self.score is None or self.band is None:
            return None
        return Measure(self.id, self.patient_id, self.group_id, self.instrument, self.closed_at, self.session_id,
                       dict(self.answers), self.score, self.band)

    def stored(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def from_stored(cls, raw: str) -> Questionnaire:
        return cls(**json.loads(raw))


async def get(redis: Redis, questionnaire_id: str) -> Questionnaire | None:
    raw = await redis.get(keys.measure(questionnaire_id))
    return Questionnaire.from_stored(raw) if raw else None


async def questionnaires_of(redis: Redis, patient_id: str) -> list[Questionnaire]:
    """Every questionnaire offered to the patient, in the order offered."""
    ids = await redis.zrange(keys.patient_measures(patient_id), 0, -1)
    if not ids:
        return []
    raws = await redis.mget([keys.measure(i) for i in ids])
    return [Questionnaire.from_stored(raw) for raw in raws if raw]


async def measures_of(redis: Redis, patient_id: str) -> list[Measure]:
    """The patient's answered questionnaires, oldest first (by when they were answered)."""
    found = [q.measure for q in await questionnaires_of(redis, patient_id)]
    return sorted((m for m in found if m is not None), key=lambda m: (m.at_ms, m.id))


async def open_offer(redis: Redis, patient_id: str, instrument: str) -> Questionnaire | None:
    """The patient's unanswered questionnaire of this instrument, if one is still answerable."""
    questionnaire_id = await redis.get(keys.open_questionnaire(patient_id, instrument))
    found = await get(redis, questionnaire_id) if questionnaire_id else None
    return found if found is not None and found.status == "open" else None


async def offer(redis: Redis, patient_id: str, group_id: str, instrument: str, session_id: str | None,
                now_ms: int) -> Questionnaire:
    """A new questionnaire for the patient, answerable for OFFER_SECONDS."""
    questionnaire = Questionnaire(new_id("qst"), patient_id, group_id, instrument, now_ms, session_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.measure(questionnaire.id), questionnaire.stored())
        pipe.zadd(keys.patient_measures(patient_id), {questionnaire.id: now_ms})
        pipe.zadd(keys.measures_by_time(), {questionnaire.id: now_ms})
        pipe.set(keys.open_questionnaire(patient_id, instrument), questionnaire.id, ex=OFFER_SECONDS)
        await pipe.execute()
    return questionnaire


async def claim(redis: Redis, questionnaire: Questionnaire) -> bool:
    """Take the offer for answering or skipping; False if it was already closed or has expired."""
    key = keys.open_questionnaire(questionnaire.patient_id, questionnaire.instrument)
    return bool(await redis.eval(_CLAIM, 1, key, questionnaire.id))


async def release(redis: Redis, questionnaire: Questionnaire) -> None:
    """Give a claimed offer back (its answer could not be stored): it may be answered again."""
    key = keys.open_questionnaire(questionnaire.patient_id, questionnaire.instrument)
    await redis.set(key, questionnaire.id, ex=OFFER_SECONDS, nx=True)


def write_closed(pipe: Any, questionnaire: Questionnaire) -> None:
    """Store an answered or skipped questionnaire (inside the caller's transaction)."""
    pipe.set(keys.measure(questionnaire.id), questionnaire.stored())


# -- export and retention ----------------------------------------------------------------


async def between(redis: Redis, low_ms: int, high_ms: int) -> list[Questionnaire]:
    """Questionnaires offered in [low_ms, high_ms)."""
    ids = await redis.zrangebyscore(keys.measures_by_time(), low_ms, f"({high_ms}")
    if not ids:
        return []
    raws = await redis.mget([keys.measure(i) for i in ids])
    return [Questionnaire.from_stored(raw) for raw in raws if raw]


def forget(pipe: Any, questionnaire: Questionnaire) -> None:
    """Remove a questionnaire (retention purge, inside a transaction)."""
    pipe.delete(keys.measure(questionnaire.id))
    pipe.zrem(keys.patient_measures(questionnaire.patient_id), questionnaire.id)
    pipe.zrem(keys.measures_by_time(), questionnaire.id)
