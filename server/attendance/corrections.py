"""An admin's correction of one patient's attendance: a new version, never an edit.

The corrected record replaces the current one for reports, every version stays in the
record's history, and a new billing record that supersedes the previous one is queued in
the same transaction.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from redis.exceptions import WatchError

from server.attendance.finalise import record_key, session_context
from server.attendance.rules import DEFAULT_MIN_ATTENDED_SECONDS, attended_minutes, short_join
from server.attendance.spreadsheet import kept_row
from server.billing import outbox
from server.billing import records as billing
from server.clinic.patients import patients_by_id
from server.clock import Clock, iso, to_ms
from server.errors import ApiError, bad_request, not_found
from server.ids import new_id
from server.store import keys
from server.store.connection import Redis

CONFLICT_RETRIES = 50

MAX_INTERVALS = 100


def parse_intervals(value: Any, window: tuple[int, int]) -> list[tuple[int, int]]:
    """ISO pairs -> merged, clipped, sorted millisecond intervals."""
    if not isinstance(value, list) or len(value) > MAX_INTERVALS:
        raise bad_request(f"intervals: a list of up to {MAX_INTERVALS} [start, end] pairs")
    spans: list[tuple[int, int]] = []
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise bad_request("intervals: each item is [start, end] as ISO 8601 UTC times")
        try:
            start, end = (to_ms(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()) for t in pair)
        except ValueError:
            raise bad_request("intervals: times must be ISO 8601, e.g. 2026-11-22T18:00:00Z") from None
        if end <= start:
            raise bad_request("intervals: each end must come after its start")
        start, end = max(start, window[0]), min(end, window[1])
        if end > start:
            spans.append((start, end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


async def correct(
    redis: Redis, clock: Clock, session_id: str, patient_id: str, intervals: Any, reason: str,
    min_attended_seconds: int = DEFAULT_MIN_ATTENDED_SECONDS,
) -> dict[str, Any]:
    ctx = await session_context(redis, session_id)
    if ctx is None:
        raise not_found("ended session")
    if not await redis.exists(keys.session_finalised(session_id)):
        raise ApiError(409, "not_final", "attendance for this session is not final yet")
    key = record_key(session_id, patient_id)
    if not await redis.hexists(keys.attendance_records(), key):
        raise not_found("attendance record")
    spans = parse_intervals(intervals, (ctx["started_ms"], ctx["ended_ms"]))
    # Optimistic: the record is read under WATCH and the correction commits only if nothing wrote
    # the records meanwhile. Two corrections of one record at once are then applied one after the
    # other (version n+1, then n+2, each bill superseding the one before), never both on version n.
    async with redis.pipeline(transaction=True) as pipe:
        for _ in range(CONFLICT_RETRIES):
            try:
                await pipe.watch(keys.attendance_records())
                current_raw = await pipe.hget(keys.attendance_records(), key)
                if current_raw is None:
                    raise not_found("attendance record")
                corrected, bill = await _correction(redis, clock, ctx, session_id, patient_id, json.loads(current_raw),
                                                    spans, reason, min_attended_seconds)
                pipe.multi()
                _write(pipe, session_id, patient_id, key, corrected, bill, to_ms(clock.now()))
                await pipe.execute()
                return corrected
            except WatchError:
                continue  # another write to the records came first: read again, apply on top of it
    raise ApiError(503, "unavailable", "the attendance records are too busy to correct now; try again")


async def _correction(
    redis: Redis, clock: Clock, ctx: dict[str, Any], session_id: str, patient_id: str, current: dict[str, Any],
    spans: list[tuple[int, int]], reason: str, min_attended_seconds: int,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The next version of a record and the billing record that supersedes its bill, if any."""
    seconds = sum(b - a for a, b in spans) // 1000
    # Media split is kept proportionally: a correction changes presence, not what the camera did.
    old = current["attended_seconds"]
    video = min(seconds, current["video_seconds"] * seconds // old) if old else 0
    audio = min(seconds - video, current["audio_only_seconds"] * seconds // old) if old else 0
    corrected = {
        **current,
        "status": "attended" if seconds > 0 else ("declined" if current["status"] == "declined" else "absent"),
        "intervals": [[iso(a), iso(b)] for a, b in spans],
        "first_join": iso(spans[0][0]) if spans else None,
        "last_leave": iso(spans[-1][1]) if spans else None,
        "attended_seconds": seconds,
        "attended_minutes": attended_minutes(seconds),
        "video_seconds": video,
        "audio_only_seconds": audio,
        "short_join": short_join(seconds, min_attended_seconds),
        "version": current["version"] + 1,
        "corrected": True,
        "correction_reason": reason,
    }
    now_ms = to_ms(clock.now())
    previous_bill = current.get("billing_record_id")
    bill = None
    if seconds > 0 or previous_bill:
        record_id = new_id("rec")
        corrected["billing_record_id"] = record_id
        present = await _attending_count(redis, ctx["started_ms"], session_id, patient_id, seconds > 0)
        patient = (await patients_by_id(redis, [patient_id])).get(patient_id, {})
        bill = billing.build(
            record_id=record_id, supersedes=previous_bill, attendance=corrected, session=ctx, group=ctx["group"],
            patient=patient, facilitator=ctx["facilitator"], participants_present=present,
            created_at=iso(now_ms) or "",
        )
    return corrected, bill


def _write(pipe: Any, session_id: str, patient_id: str, key: str, corrected: dict[str, Any],
           bill: dict[str, Any] | None, now_ms: int) -> None:
    raw = json.dumps(corrected)
    pipe.hset(keys.attendance_records(), key, raw)
    # What the CSV reads of the record changes with it.
    if (kept := kept_row(raw)) is not None:
        pipe.hset(keys.attendance_csv(), key, kept)
    else:
        pipe.hdel(keys.attendance_csv(), key)
    pipe.rpush(keys.attendance_history(session_id, patient_id), raw)
    if bill is not None:
        data = bill["data"]
        meta = {"session_id": session_id, "patient_id": patient_id, "supersedes": data["supersedes"],
                "attended_minutes": data["attended_minutes"]}
        outbox.queue(pipe, data["record_id"], billing.body_bytes(bill), meta, now_ms)
        pipe.hset(keys.billing_session_records(session_id), patient_id, data["record_id"])


async def _attending_count(redis: Redis, started_ms: int, session_id: str, patient_id: str, attends: bool) -> int:
    """Attending patients of the session after this correction (the index finds its records)."""
    members = [m for m in await redis.zrangebyscore(keys.attendance_by_start(), started_ms, started_ms)
               if m.startswith(f"{session_id}:") and m != record_key(session_id, patient_id)]
    raws = await redis.hmget(keys.attendance_records(), members) if members else []
    return sum(1 for r in raws if r and json.loads(r)["status"] == "attended") + int(attends)
