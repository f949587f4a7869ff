"""Measures, safety alerts and feedback in the backup export and the retention purge
(server/backup.py): the same periods as attendance, by when each was taken."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from server.measures import alerts, feedback, store
from server.store.connection import Redis


async def export_lines(redis: Redis, low_ms: int, high_ms: int) -> AsyncIterator[dict[str, Any]]:
    """Questionnaires offered, alerts raised and feedback given in [low_ms, high_ms)."""
    for questionnaire in await store.between(redis, low_ms, high_ms):
        yield {"kind": "measure", "record": questionnaire.__dict__}
    for alert in await alerts.between(redis, low_ms, high_ms):
        yield {"kind": "safety_alert", "record": alert.__dict__}
    for answer in await feedback.between(redis, low_ms, high_ms):
        yield {"kind": "feedback", "record": answer.__dict__}


async def purge(redis: Redis, cutoff_ms: int, dry_run: bool) -> dict[str, int]:
    """Remove what was taken before `cutoff_ms`; returns the counts."""
    old_measures = await store.between(redis, 0, cutoff_ms)
    old_alerts = await alerts.between(redis, 0, cutoff_ms)
    old_feedback = await feedback.between(redis, 0, cutoff_ms)
    if not dry_run:
        async with redis.pipeline(transaction=True) as pipe:
            for questionnaire in old_measures:
                store.forget(pipe, questionnaire)
            for alert in old_alerts:
                alerts.forget(pipe, alert)
            for answer in old_feedback:
                feedback.forget(pipe, answer)
            await pipe.execute()
    return {"measures": len(old_measures), "safety_alerts": len(old_alerts), "feedback": len(old_feedback)}
