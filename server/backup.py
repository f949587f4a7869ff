"""Backup export (JSON lines) and the retention purge.

Nothing Porchlight keeps as a record (sessions, events, attendance, billing, audit) has a
TTL: records leave only through `porchlight retention purge`, which removes sessions that
started before the retention period (PORCHLIGHT_RETENTION_YEARS, default 10) with their
attendance and billing records, and questionnaires, safety alerts and feedback taken before it.
The audit log is append-only and hash-chained; it is never purged (its entries hold ids, not
health information).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from server.audit import AuditLog
from server.billing import outbox
from server.clock import Clock, SystemClock, iso
from server.measures import retention as measures_retention
from server.store import keys, sessions
from server.store.connection import Redis


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


async def _sessions(redis: Redis, low_ms: int, high_ms: int) -> list[str]:
    return list(await redis.zrangebyscore(keys.sessions_by_start(), low_ms, f"({high_ms}"))


async def export_lines(redis: Redis, start: date, end: date) -> AsyncIterator[dict[str, Any]]:
    """Everything about sessions that started in [start, end] (UTC days), and the audit entries then."""
    low, high = _ms(start), _ms(end + timedelta(days=1))
    for session_id in await _sessions(redis, low, high):
        record = await sessions.read(redis, session_id)
        if record is None:
            continue
        events = [json.loads(e) for e in await redis.lrange(keys.session_events(session_id), 0, -1)]
        yield {"kind": "session", "session": record.stored, "events": events}
        for member in await redis.zrangebyscore(keys.attendance_by_start(), record.started_at, record.started_at):
            if not member.startswith(f"{session_id}:"):
                continue
            patient_id = member.split(":", 1)[1]
            for version in await redis.lrange(keys.attendance_history(session_id, patient_id), 0, -1):
                yield {"kind": "attendance", "record": json.loads(version)}
        for record_id in (await redis.hgetall(keys.billing_session_records(session_id))).values():
            body = await redis.get(keys.billing_record(record_id))
            delivery = await redis.hgetall(keys.billing_delivery(record_id))
            yield {"kind": "billing_record", "record": json.loads(body) if body else None, "delivery": delivery}
    async for line in measures_retention.export_lines(redis, low, high):
        yield line
    first, last = iso(low) or "", iso(high) or ""
    for entry in await AuditLog(redis, SystemClock()).entries():
        if first <= entry["at"] < last:
            yield {"kind": "audit", "entry": entry}


async def purge(redis: Redis, clock: Clock, years: int, dry_run: bool) -> dict[str, int]:
    """Remove sessions older than the retention period with their records; returns counts."""
    today = datetime.fromtimestamp(clock.now(), tz=UTC).date()
    try:
        cutoff = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        cutoff = today.replace(year=today.year - years, day=28)
    counts = {"sessions": 0, "attendance_records": 0, "billing_records": 0}
    for session_id in await _sessions(redis, 0, _ms(cutoff)):
        record = await sessions.read(redis, session_id)
        if record is None or not record.ended:
            continue
        members = [m for m in await redis.zrangebyscore(keys.attendance_by_start(), record.started_at,
                                                        record.started_at) if m.startswith(f"{session_id}:")]
        bills = await redis.hgetall(keys.billing_session_records(session_id))
        counts["sessions"] += 1
        counts["attendance_records"] += len(members)
        counts["billing_records"] += len(bills)
        if dry_run:
            continue
        async with redis.pipeline(transaction=True) as pipe:
            for member in members:
                pipe.hdel(keys.attendance_records(), member)
                pipe.hdel(keys.attendance_csv(), member)
                pipe.zrem(keys.attendance_by_start(), member)
                pipe.delete(keys.attendance_history(session_id, member.split(":", 1)[1]))
            for record_id in bills.values():
                outbox.forget(pipe, record_id)
            sessions.delete(pipe, record)
            await pipe.execute()
    counts.update(await measures_retention.purge(redis, _ms(cutoff), dry_run))
    return counts
