"""Finalising a session: events -> attendance records -> billing records, exactly once.

Ending a session adds it to the `finalise:pending` set in the same transaction as the end.
Finalisation computes every record, then writes them all, with their billing records and
delivery jobs, in one MULTI/EXEC guarded by WATCH on the session's `finalised` flag: when two
requests or two processes race, exactly one transaction commits. A process that dies before
finalising leaves the session pending; the sweeper of any process picks it up.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from server.attendance.rules import (
    DEFAULT_MIN_ATTENDED_SECONDS,
    PatientAttendance,
    attended_minutes,
    session_attendance,
    short_join,
)
from server.attendance.spreadsheet import kept_row
from server.audit import Action, AuditLog
from server.auth.staff import get_user
from server.billing import outbox
from server.billing import records as billing
from server.clinic.enrollments import group_enrollments
from server.clinic.groups import get_group
from server.clinic.patients import patients_by_id
from server.clock import Clock, iso, to_ms
from server.ids import new_id
from server.store import keys, sessions
from server.store.connection import Redis

# A session's record up to this many events is computed on the event loop (about 2 ms; a group
# of 12 leaves about 80), a longer one in a thread. A thread costs the loop more than it saves
# for short records: it holds the GIL for up to the switch interval (5 ms) whenever the loop
# thread gives it up for a system call, so every socket write of the process waits behind it.
INLINE_EVENTS = 200


def service_date(started_ms: int, timezone: str) -> str:
    return datetime.fromtimestamp(started_ms / 1000, tz=ZoneInfo(timezone)).date().isoformat()


def record_key(session_id: str, patient_id: str) -> str:
    return f"{session_id}:{patient_id}"


def _enrolled_on(enrollment: dict[str, Any], day: str, started_ms: int) -> bool:
    if enrollment.get("starts_on") and enrollment["starts_on"] > day:
        return False
    if enrollment.get("ends_on") and enrollment["ends_on"] < day:
        return False
    ended = enrollment.get("ended_at")
    return not (ended and ended < (iso(started_ms) or ""))


def attendance_record(
    session: dict[str, Any], group: dict[str, Any], patient_id: str, facts: PatientAttendance | None, day: str,
    min_attended_seconds: int = DEFAULT_MIN_ATTENDED_SECONDS,
) -> dict[str, Any]:
    seconds = facts.attended_seconds if facts else 0
    return {
        "session_id": session["id"],
        "group_id": group["id"],
        "patient_id": patient_id,
        "service_date": day,
        "status": facts.status if facts else "absent",
        "first_join": iso(facts.first_join) if facts else None,
        "last_leave": iso(facts.last_leave) if facts else None,
        "intervals": [[iso(a), iso(b)] for a, b in facts.intervals] if facts else [],
        "attended_seconds": seconds,
        "attended_minutes": attended_minutes(seconds),
        "waited_seconds": facts.waited_seconds if facts else 0,
        "reconnects": facts.reconnects if facts else 0,
        "video_seconds": facts.video_seconds if facts else 0,
        "audio_only_seconds": facts.audio_only_seconds if facts else 0,
        "location": facts.location if facts else None,
        "short_join": short_join(seconds, min_attended_seconds),
        "version": 1,
        "corrected": False,
        "correction_reason": None,
        "billing_record_id": None,
    }


async def session_context(redis: Redis, session_id: str) -> dict[str, Any] | None:
    """The ended session with what records need: times, group, facilitator."""
    record = await sessions.read(redis, session_id)
    if record is None or not record.ended or record.ended_at is None:
        return None
    group = await get_group(redis, record.group_id)
    if group is None:
        return None
    started, ended = record.started_at, record.ended_at
    opener = await get_user(redis, record.opened_by) if record.opened_by else None
    if opener is None or opener.id not in group.get("facilitator_ids", []):
        ids = group.get("facilitator_ids", [])
        opener = await get_user(redis, ids[0]) if ids else opener
    return {
        "id": session_id,
        "group": group,
        "started_ms": started,
        "ended_ms": ended,
        "started_at": iso(started),
        "ended_at": iso(ended),
        "session_seconds": (ended - started) // 1000,
        "service_date": service_date(started, group.get("timezone", "UTC")),
        "facilitator": {"id": opener.id, "npi": opener.npi} if opener else {"id": None, "npi": None},
    }


async def finalise(
    redis: Redis, clock: Clock, audit: AuditLog, session_id: str,
    min_attended_seconds: int = DEFAULT_MIN_ATTENDED_SECONDS,
) -> bool:
    """Make the session's attendance final and queue its billing records. True if this call did it."""
    if await redis.exists(keys.session_finalised(session_id)):
        await redis.srem(keys.finalise_pending(), session_id)
        return False
    ctx = await session_context(redis, session_id)
    if ctx is None:
        return False
    group = ctx["group"]
    raws = await redis.lrange(keys.session_events(session_id), 0, -1)
    if len(raws) <= INLINE_EVENTS:
        facts = _attendance_of(raws, ctx["started_ms"], ctx["ended_ms"])
    else:
        # Off the event loop: a session with a very long record (tens of thousands of events)
        # would otherwise stall every room of this process while it is computed.
        facts = await asyncio.to_thread(_attendance_of, raws, ctx["started_ms"], ctx["ended_ms"])
    day = ctx["service_date"]
    enrolled = {e["patient_id"] for e in await group_enrollments(redis, group["id"])
                if _enrolled_on(e, day, ctx["started_ms"])}
    patient_ids = sorted(enrolled | set(facts))
    patients = await patients_by_id(redis, patient_ids)
    now_ms = to_ms(clock.now())
    records: dict[str, dict[str, Any]] = {}
    for pid in patient_ids:
        records[pid] = attendance_record(ctx, group, pid, facts.get(pid), day, min_attended_seconds)
    attending = [pid for pid, r in records.items() if r["status"] == "attended"]
    texts: dict[str, str] = {}
    bills: list[tuple[str, bytes, dict[str, Any]]] = []
    for pid in patient_ids:
        # One patient's records per step, the loop running between them: a session's dozen
        # records and their JSON are a few milliseconds of CPU together (bench/billing.py).
        await asyncio.sleep(0)
        record = records[pid]
        if record["status"] == "attended":
            record_id = record["billing_record_id"] = new_id("rec")
            bill = billing.build(
                record_id=record_id, supersedes=None, attendance=record, session=ctx, group=group,
                patient=patients.get(pid, {}), facilitator=ctx["facilitator"], participants_present=len(attending),
                created_at=iso(now_ms) or "",
            )
            data = bill["data"]
            bills.append((record_id, billing.body_bytes(bill), {
                "session_id": session_id, "patient_id": pid, "supersedes": data["supersedes"],
                "attended_minutes": data["attended_minutes"]}))
        texts[pid] = json.dumps(record)
    kept = {pid: row for pid, text in texts.items() if (row := kept_row(text)) is not None}

    async def unfinalised(pipe: Any) -> bool:
        return not await pipe.exists(keys.session_finalised(session_id))

    def write(pipe: Any) -> None:
        pipe.set(keys.session_finalised(session_id), now_ms)
        _write_records(pipe, ctx, texts, kept)
        _write_bills(pipe, session_id, bills, now_ms)
        pipe.srem(keys.finalise_pending(), session_id)

    # The records, their billing records and the audit entry in one transaction, guarded by the
    # session's `finalised` flag: of two racing finalisations exactly one commits.
    action = Action("attendance.finalise", None, {"session_id": session_id, "patients": len(records),
                                                  "attending": len(attending), "billing_records": len(bills)})
    committed = await audit.commit_if([action], write, watch=(keys.session_finalised(session_id),),
                                      ready=unfinalised)
    return committed is not None


def _attendance_of(raws: list[str], started_ms: int, ended_ms: int) -> dict[str, PatientAttendance]:
    return session_attendance([json.loads(e) for e in raws], started_ms, ended_ms)


def _write_records(pipe: Any, ctx: dict[str, Any], texts: dict[str, str], kept: dict[str, str]) -> None:
    """The session's attendance records (JSON by patient) and their kept CSV rows (spreadsheet.Kept)."""
    if not texts:
        return
    pipe.hset(keys.attendance_records(), mapping={record_key(ctx["id"], pid): raw for pid, raw in texts.items()})
    if kept:  # what the CSV reads of each record, beside it
        pipe.hset(keys.attendance_csv(), mapping={record_key(ctx["id"], pid): row for pid, row in kept.items()})
    pipe.zadd(keys.attendance_by_start(), {record_key(ctx["id"], pid): ctx["started_ms"] for pid in texts})
    for pid, raw in texts.items():
        pipe.rpush(keys.attendance_history(ctx["id"], pid), raw)


def _write_bills(pipe: Any, session_id: str, bills: list[tuple[str, bytes, dict[str, Any]]], now_ms: int) -> None:
    if not bills:
        return
    outbox.queue_many(pipe, bills, now_ms)
    pipe.hset(keys.billing_session_records(session_id), mapping={meta["patient_id"]: record_id
                                                                  for record_id, _, meta in bills})


async def finalise_pending(
    redis: Redis, clock: Clock, audit: AuditLog, min_attended_seconds: int = DEFAULT_MIN_ATTENDED_SECONDS
) -> int:
    """Finalise every ended session still waiting for it (after a crash, or a Redis outage)."""
    done = 0
    for session_id in await redis.smembers(keys.finalise_pending()):
        done += await finalise(redis, clock, audit, session_id, min_attended_seconds)
    return done
