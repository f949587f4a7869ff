"""Risk flags from a patient's questionnaires, shown beside the attendance dropout flags (pure,
but for `flags_of`, which reads the questionnaires).

- `worsening`: a PHQ-9 total at least WORSENING_POINTS (5, a clinically meaningful change) above
  the patient's first PHQ-9 or their previous one.
- `not_answering`: the two most recent questionnaires offered to the patient that are settled
  (answered, skipped, or expired unanswered) were not answered.
- `feedback_falling`: the patient's last three session ratings fell each time (e.g. 5, 4, 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from server.measures.feedback import ratings_of
from server.measures.store import OFFER_SECONDS, Measure, Questionnaire, questionnaires_of
from server.store.connection import Redis

WORSENING_POINTS = 5


@dataclass(frozen=True)
class Flag:
    kind: str  # worsening | not_answering
    text: str


def worsening(measures: list[Measure]) -> Flag | None:
    phq = [m for m in measures if m.instrument == "PHQ-9"]
    if len(phq) < 2:
        return None
    latest, previous, first = phq[-1], phq[-2], phq[0]
    for before, which in ((previous, "previous"), (first, "first")):
        if latest.score - before.score >= WORSENING_POINTS:
            return Flag("worsening", f"PHQ-9 worse by {latest.score - before.score} points than the {which} "
                                     f"({before.score} → {latest.score})")
    return None


def not_answering(questionnaires: list[Questionnaire], now_ms: int) -> Flag | None:
    settled = [q for q in questionnaires
               if q.status != "open" or now_ms - q.offered_at >= OFFER_SECONDS * 1000]
    recent = sorted(settled, key=lambda q: q.offered_at)[-2:]
    if len(recent) == 2 and all(q.status != "answered" for q in recent):
        return Flag("not_answering", "stopped answering questionnaires (the last two were not answered)")
    return None


def feedback_falling(ratings: list[int]) -> Flag | None:
    last = ratings[-3:]
    if len(last) == 3 and last[0] > last[1] > last[2]:
        return Flag("feedback_falling", "session ratings falling ({})".format(" → ".join(map(str, last))))
    return None


def flags(questionnaires: list[Questionnaire], now_ms: int, ratings: list[int] | None = None) -> list[Flag]:
    answered = sorted((m for m in (q.measure for q in questionnaires) if m is not None), key=lambda m: m.at_ms)
    found = (worsening(answered), not_answering(questionnaires, now_ms), feedback_falling(ratings or []))
    return [f for f in found if f is not None]


async def flags_of(redis: Redis, patient_ids: list[str], now_ms: int) -> dict[str, list[Flag]]:
    """The patients' flags, only for those with any."""
    out = {}
    for patient_id in patient_ids:
        found = flags(await questionnaires_of(redis, patient_id), now_ms, await ratings_of(redis, patient_id))
        if found:
            out[patient_id] = found
    return out
