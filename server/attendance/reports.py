"""Attendance minutes for admins: records by date range, weekly totals, CSV.

Dates are service dates in each group's timezone. Weekly totals are per ISO week against the
program minimum (IOP 9 h, PHP 20 h by default; set per group as `weekly_minimum_hours`).

Dropout risk (a documented rule, flagged per patient per week): the patient was absent from
their two most recent sessions up to the end of that week, or their attended time fell two
weeks running (this week < last week < the week before).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from typing import Any, NamedTuple

import msgspec

from server import collector
from server.attendance import spreadsheet
from server.attendance.spreadsheet import CSV_COLUMNS, Readers, Writer, texts_csv
from server.clinic.groups import all_groups
from server.clinic.patients import patients_by_id
from server.clock import Clock
from server.store import keys
from server.store.connection import Redis

DAY_MS = 24 * 3600 * 1000
BATCH = 2000


def default_range(clock: Clock) -> tuple[date, date]:
    today = datetime.fromtimestamp(clock.now(), tz=UTC).date()
    return today - timedelta(days=30), today


class _Chooser(msgspec.Struct, gc=False):
    """The fields that decide whether a record is in a report (and whose it is), decoded without
    the rest."""

    service_date: str
    group_id: str
    patient_id: Any = None


class _WeekFacts(msgspec.Struct, gc=False):
    """What weekly totals read of a record (gc=False: 100,000 of them add nothing to collect)."""

    patient_id: str
    group_id: str
    service_date: str
    status: str
    attended_seconds: int


async def readers(redis: Redis, patient_ids: Iterable[str]) -> Readers:
    found = await patients_by_id(redis, sorted(set(patient_ids)))
    zones = {g["id"]: g.get("timezone") or "UTC" for g in await all_groups(redis)}
    return Readers(found, zones)


_choose = msgspec.json.Decoder(_Chooser)
_week_facts = msgspec.json.Decoder(_WeekFacts)
_record = msgspec.json.Decoder()


class Chosen(NamedTuple):
    """The stored JSON of the records a report shows, in session order, and whose they are."""

    texts: list[str]
    patient_ids: set[str]


async def chosen(
    redis: Redis, start: date, end: date, group_id: str | None = None, patient_id: str | None = None
) -> Chosen:
    """The current attendance records whose service date is within [start, end], as stored. Only
    the fields that choose a record are decoded."""
    texts: list[str] = []
    patients: set[str] = set()
    first, last = start.isoformat(), end.isoformat()
    async for _, raws in _stored(redis, start, end, group_id, patient_id):
        for raw in raws:
            if raw is None:
                continue
            row = _choose.decode(raw)
            if _chosen(row.service_date, row.group_id, first, last, group_id):
                texts.append(raw)
                patients.add(str(row.patient_id))
    return Chosen(texts, patients)


async def record_texts(
    redis: Redis, start: date, end: date, group_id: str | None = None, patient_id: str | None = None
) -> list[str]:
    return (await chosen(redis, start, end, group_id, patient_id)).texts


async def _stored(
    redis: Redis, start: date, end: date, group_id: str | None, patient_id: str | None,
    stored: str | None = None,
) -> AsyncIterator[tuple[list[str], list[str | None]]]:
    """The keys of every record indexed near [start, end] with their values in the hash `stored`
    (the records themselves by default; None: not there), BATCH at a time; the caller chooses by
    service date and group."""
    # Service dates are local to each group; a day of margin each side covers every timezone.
    low = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp() * 1000) - DAY_MS
    high = int(datetime(end.year, end.month, end.day, tzinfo=UTC).timestamp() * 1000) + 2 * DAY_MS
    members = await redis.zrangebyscore(keys.attendance_by_start(), low, high)
    if group_id is not None:
        # A group's sessions are indexed by the same start (store/sessions.write_opened): read
        # only their records, not every group's.
        ours = set(await redis.zrangebyscore(keys.group_sessions(group_id), low, high))
        members = [m for m in members if m.split(":", 1)[0] in ours]
    if patient_id is not None:
        members = [m for m in members if m.endswith(f":{patient_id}")]
    for i in range(0, len(members), BATCH):
        batch = members[i:i + BATCH]
        yield batch, await redis.hmget(stored or keys.attendance_records(), batch)


async def records(
    redis: Redis, start: date, end: date, group_id: str | None = None, patient_id: str | None = None
) -> list[dict[str, Any]]:
    """Current attendance records whose service date is within [start, end], in session order."""
    texts = await record_texts(redis, start, end, group_id, patient_id)
    with collector.paused():  # 100,000 records are as many dicts, all kept
        return [_record.decode(raw) for raw in texts]


def records_json(texts: list[str]) -> bytes:
    """`{"records": [...]}` of stored record texts, compact, without decoding them."""
    parts = list(texts)  # the brackets go on the first and last text: 57 MB are copied once, not thrice
    if not parts:
        return b'{"records":[]}'
    parts[0] = '{"records":[' + parts[0]
    parts[-1] += "]}"
    return msgspec.json.format(",".join(parts).encode(), indent=-1)


async def session_records(redis: Redis, session_id: str, started_ms: int) -> list[dict[str, Any]]:
    members = [m for m in await redis.zrangebyscore(keys.attendance_by_start(), started_ms, started_ms)
               if m.startswith(f"{session_id}:")]
    raws = await redis.hmget(keys.attendance_records(), members) if members else []
    return sorted((json.loads(r) for r in raws if r), key=lambda r: r["patient_id"])


async def history(redis: Redis, session_id: str, patient_id: str) -> list[dict[str, Any]]:
    return [json.loads(r) for r in await redis.lrange(keys.attendance_history(session_id, patient_id), 0, -1)]


def to_csv(rows: list[dict[str, Any]], people: Readers | None = None) -> str:
    people = people or Readers({}, {})
    out = Writer()
    for row in rows:
        out.row(tuple(row.get(column) for column in CSV_COLUMNS) + people.cells(
            row.get("patient_id"), row.get("group_id"), row.get("first_join"), row.get("last_leave")))
    return out.text()


def texts_to_csv(texts: list[str], people: Readers | None = None) -> str:
    """The same CSV as `to_csv` of the decoded records, decoding only its columns."""
    return texts_csv(texts, people or Readers({}, {}))


async def export_csv(
    redis: Redis, start: date, end: date, group_id: str | None = None, patient_id: str | None = None
) -> tuple[str, int]:
    """The attendance CSV of the records `chosen()` picks, with the readers' columns, and how many
    rows it has. A record's kept row (`spreadsheet.Kept`) is read instead of the record; a record
    without one (written before rows were kept) is read whole."""
    first, last = start.isoformat(), end.isoformat()
    entries: list[str | spreadsheet.Kept] = []
    patients: set[str] = set()
    async for members, rows in _stored(redis, start, end, group_id, patient_id, keys.attendance_csv()):
        whole = [m for m, row in zip(members, rows, strict=True) if row is None]
        texts = dict(zip(whole, await redis.hmget(keys.attendance_records(), whole), strict=True)) if whole else {}
        for member, row in zip(members, rows, strict=True):
            if row is not None:
                kept = spreadsheet.kept(row)
                if _chosen(kept.service_date, kept.group_id, first, last, group_id):
                    entries.append(kept)
                    patients.add(kept.patient_id)
                continue
            raw = texts[member]
            if raw is None:
                continue
            chooser = _choose.decode(raw)
            if _chosen(chooser.service_date, chooser.group_id, first, last, group_id):
                entries.append(raw)
                patients.add(str(chooser.patient_id))
    return texts_csv(entries, await readers(redis, patients)), len(entries)


def iso_week(service_date: str) -> str:
    year, week, _ = date.fromisoformat(service_date).isocalendar()
    return f"{year}-W{week:02d}"


async def weekly(redis: Redis, start: date, end: date, group_id: str | None = None) -> list[dict[str, Any]]:
    # Look back far enough for the dropout rule: two weeks before the first requested week.
    first, last = (start - timedelta(days=21)).isoformat(), end.isoformat()
    rows: list[_WeekFacts] = []
    async for _, raws in _stored(redis, start - timedelta(days=21), end, group_id, None):
        for raw in raws:
            if raw is None:
                continue
            try:
                row = _week_facts.decode(raw)
            except msgspec.ValidationError:
                # Not a record weekly totals can read: an error if the report shows it, as before.
                chosen = _choose.decode(raw)
                if _chosen(chosen.service_date, chosen.group_id, first, last, group_id):
                    raise
                continue
            if _chosen(row.service_date, row.group_id, first, last, group_id):
                rows.append(row)
    minimums = {g["id"]: int(g.get("weekly_minimum_hours", 0)) * 3600 for g in await all_groups(redis)}
    with collector.paused():  # the per-patient lists of 100,000 rows, all kept until the end
        return _weeks(rows, minimums, iso_week(start.isoformat()))


def _weeks(rows: list[_WeekFacts], minimums: dict[str, int], first_week: str) -> list[dict[str, Any]]:
    week_of: dict[str, str] = {}  # service date -> ISO week: a year of records has 365 dates
    by_patient: dict[str, list[_WeekFacts]] = defaultdict(list)
    for row in rows:
        by_patient[row.patient_id].append(row)
    out = []
    for patient_id in sorted(by_patient):
        mine = by_patient[patient_id]
        totals: dict[str, int] = {}  # week -> attended seconds
        need: dict[str, int] = {}  # week -> the highest minimum of the patient's groups that week
        for row in mine:
            week = week_of.get(row.service_date)
            if week is None:
                week = week_of[row.service_date] = iso_week(row.service_date)
            totals[week] = totals.get(week, 0) + row.attended_seconds
            need[week] = max(need.get(week, 0), minimums.get(row.group_id, 0))
        weeks = sorted(totals)
        mine.sort(key=attrgetter("service_date", "status"))  # oldest first
        history = [week_of[row.service_date] for row in mine]
        statuses = [row.status for row in mine]
        seen = 0
        for index, week in enumerate(weeks):
            while seen < len(history) and history[seen] <= week:
                seen += 1
            if week < first_week:
                continue
            last_three = [totals[w] for w in weeks[max(0, index - 2):index + 1]]
            falling = len(last_three) == 3 and last_three[2] < last_three[1] < last_three[0]
            recent = statuses[max(0, seen - 2):seen]
            missed = len(recent) == 2 and all(status != "attended" for status in recent)
            seconds = totals[week]
            out.append({
                "patient_id": patient_id, "week": week, "attended_seconds": seconds, "minimum_seconds": need[week],
                "meets_minimum": seconds >= need[week], "dropout_risk": missed or falling,
            })
    return out


def at_risk(weeks: list[dict[str, Any]]) -> dict[str, str]:
    """The patients flagged for dropout risk, by their latest week in `weeks` -> that week. The one
    reading of the weekly rule that every view (the card, the chart, the list) shows."""
    latest: dict[str, dict[str, Any]] = {}
    for week in weeks:
        if week["patient_id"] not in latest or week["week"] > latest[week["patient_id"]]["week"]:
            latest[week["patient_id"]] = week
    return {patient_id: w["week"] for patient_id, w in latest.items() if w["dropout_risk"]}


async def attended(redis: Redis, session_id: str, patient_id: str) -> bool:
    """Whether the patient was present in the session at all (a `joined` event), final or not."""
    for raw in await redis.lrange(keys.session_events(session_id), 0, -1):
        if f'"{patient_id}"' in raw:  # most events are someone else's: parse only the patient's
            event = json.loads(raw)
            if event.get("type") == "joined" and event.get("patient_id") == patient_id:
                return True
    return False


def _chosen(service_date: str, group: str, first: str, last: str, group_id: str | None) -> bool:
    """A record belongs to a report over [first, last] (ISO dates), of one group or of all."""
    return first <= service_date <= last and (group_id is None or group == group_id)
