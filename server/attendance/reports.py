"""Attendance minutes for admins: records by date range, weekly totals, CSV.

Dates are service dates in each group's timezone. Weekly totals are per ISO week against the
program minimum (IOP 9 h, PHP 20 h by default; set per group as `weekly_minimum_hours`).

Dropout risk (a documented rule, flagged per patient per week): the patient was absent from
their two most recent sessions up to the end of that week, or their attended time fell two
weeks running (this week < last week < the week before).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from server.clinic.groups import all_groups
from server.clinic.patients import patients_by_id
from server.clock import Clock
from server.store import keys
from server.store.connection import Redis

DAY_MS = 24 * 3600 * 1000
CSV_COLUMNS = [
    "session_id", "group_id", "patient_id", "service_date", "status", "first_join", "last_leave",
    "attended_seconds", "attended_minutes", "waited_seconds", "reconnects", "video_seconds",
    "audio_only_seconds", "intervals", "corrected", "correction_reason", "billing_record_id", "short_join",
]
# For the people who read the export, after the record's own columns (so a consumer reading
# columns by position is not moved): the patient's name and external id (MRN), and the first
# join and last leave in the group's timezone (ISO 8601 with its offset) beside the UTC ones.
READER_COLUMNS = ["display_name", "external_id", "timezone", "first_join_local", "last_leave_local"]
INTERVALS = CSV_COLUMNS.index("intervals")
BATCH = 2000


def default_range(clock: Clock) -> tuple[date, date]:
    today = datetime.fromtimestamp(clock.now(), tz=UTC).date()
    return today - timedelta(days=30), today


class _Chooser(msgspec.Struct, gc=False):
    """The fields that decide whether a record is in a report: decoded without the rest."""

    service_date: str
    group_id: str


class _WeekFacts(msgspec.Struct, gc=False):
    """What weekly totals read of a record (gc=False: 100,000 of them add nothing to collect)."""

    patient_id: str
    group_id: str
    service_date: str
    status: str
    attended_seconds: int


class _CsvRow(msgspec.Struct, gc=False):
    """A record's CSV_COLUMNS, in their order (missing fields are empty cells, as before)."""

    session_id: Any = None
    group_id: Any = None
    patient_id: Any = None
    service_date: Any = None
    status: Any = None
    first_join: Any = None
    last_leave: Any = None
    attended_seconds: Any = None
    attended_minutes: Any = None
    waited_seconds: Any = None
    reconnects: Any = None
    video_seconds: Any = None
    audio_only_seconds: Any = None
    intervals: Any = None
    corrected: Any = None
    correction_reason: Any = None
    billing_record_id: Any = None
    short_join: Any = None


@dataclass(frozen=True)
class Readers:
    """What the CSV's READER_COLUMNS are made from: patients by id, group timezones by id."""

    patients: dict[str, dict[str, Any]]
    zones: dict[str, str]

    def cells(self, patient_id: Any, group_id: Any, first_join: Any, last_leave: Any) -> tuple[Any, ...]:
        patient = self.patients.get(str(patient_id), {})
        zone = self.zones.get(str(group_id), "UTC")
        return (patient.get("display_name"), patient.get("external_id"), zone,
                _local(first_join, zone), _local(last_leave, zone))


def _local(utc: Any, zone: str) -> str | None:
    if not isinstance(utc, str) or not utc:
        return None
    return datetime.fromisoformat(utc.replace("Z", "+00:00")).astimezone(ZoneInfo(zone)).isoformat()


async def readers(redis: Redis, patient_ids: Iterable[str]) -> Readers:
    found = await patients_by_id(redis, sorted(set(patient_ids)))
    zones = {g["id"]: g.get("timezone") or "UTC" for g in await all_groups(redis)}
    return Readers(found, zones)


_choose = msgspec.json.Decoder(_Chooser)
_week_facts = msgspec.json.Decoder(_WeekFacts)
_csv_row = msgspec.json.Decoder(_CsvRow)
_record = msgspec.json.Decoder()


async def record_texts(
    redis: Redis, start: date, end: date, group_id: str | None = None, patient_id: str | None = None
) -> list[str]:
    """The stored JSON of the current attendance records whose service date is within [start, end],
    in session order. Only the fields that choose a record are decoded."""
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
    first, last = start.isoformat(), end.isoformat()
    out: list[str] = []
    for i in range(0, len(members), BATCH):
        for raw in await redis.hmget(keys.attendance_records(), members[i:i + BATCH]):
            if raw is None:
                continue
            chosen = _choose.decode(raw)
            if first <= chosen.service_date <= last and (group_id is None or chosen.group_id == group_id):
                out.append(raw)
    return out


async def records(
    redis: Redis, start: date, end: date, group_id: str | None = None, patient_id: str | None = None
) -> list[dict[str, Any]]:
    """Current attendance records whose service date is within [start, end], in session order."""
    return [_record.decode(raw) for raw in await record_texts(redis, start, end, group_id, patient_id)]


def records_json(texts: list[str]) -> bytes:
    """`{"records": [...]}` of stored record texts, compact, without decoding them."""
    return msgspec.json.format(('{"records":[' + ",".join(texts) + "]}").encode(), indent=-1)


async def session_records(redis: Redis, session_id: str, started_ms: int) -> list[dict[str, Any]]:
    members = [m for m in await redis.zrangebyscore(keys.attendance_by_start(), started_ms, started_ms)
               if m.startswith(f"{session_id}:")]
    raws = await redis.hmget(keys.attendance_records(), members) if members else []
    return sorted((json.loads(r) for r in raws if r), key=lambda r: r["patient_id"])


async def history(redis: Redis, session_id: str, patient_id: str) -> list[dict[str, Any]]:
    return [json.loads(r) for r in await redis.lrange(keys.attendance_history(session_id, patient_id), 0, -1)]


# A spreadsheet reads a cell starting with one of these as a formula (OWASP's list; a leading
# tab, CR or LF hides the formula sign from a check of the first character only).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def _escape(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(rows: list[dict[str, Any]], people: Readers | None = None) -> str:
    people = people or Readers({}, {})
    return _csv(tuple(row.get(column) for column in CSV_COLUMNS)
                + people.cells(row.get("patient_id"), row.get("group_id"), row.get("first_join"), row.get("last_leave"))
                for row in rows)


def texts_to_csv(texts: list[str], people: Readers | None = None) -> str:
    """The same CSV as `to_csv` of the decoded records, decoding only its columns."""
    return _rows_csv([_csv_row.decode(raw) for raw in texts], people or Readers({}, {}))


async def export_csv(redis: Redis, texts: list[str]) -> str:
    """The attendance CSV of stored record texts, with the readers' columns filled in."""
    rows = [_csv_row.decode(raw) for raw in texts]
    return _rows_csv(rows, await readers(redis, [str(row.patient_id) for row in rows]))


def _rows_csv(rows: list[_CsvRow], people: Readers) -> str:
    return _csv(msgspec.structs.astuple(row) + people.cells(row.patient_id, row.group_id, row.first_join,
                                                            row.last_leave) for row in rows)


def _csv(rows: Iterable[tuple[Any, ...]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS + READER_COLUMNS)
    for row in rows:
        cells = []
        for column, value in enumerate(row):
            if value is None:
                cells.append("")
            elif value is True or value is False:
                cells.append("true" if value else "false")
            elif column == INTERVALS:
                cells.append(_escape(";".join(f"{a}/{b}" for a, b in value)))
            else:
                cells.append(_escape(value))
        writer.writerow(cells)
    return buffer.getvalue()


def iso_week(service_date: str) -> str:
    year, week, _ = date.fromisoformat(service_date).isocalendar()
    return f"{year}-W{week:02d}"


async def weekly(redis: Redis, start: date, end: date, group_id: str | None = None) -> list[dict[str, Any]]:
    # Look back far enough for the dropout rule: two weeks before the first requested week.
    rows = [_week_facts.decode(raw) for raw in await record_texts(redis, start - timedelta(days=21), end, group_id)]
    minimums = {g["id"]: int(g.get("weekly_minimum_hours", 0)) * 3600 for g in await all_groups(redis)}
    per_week: dict[tuple[str, str], int] = defaultdict(int)
    minimum: dict[tuple[str, str], int] = defaultdict(int)
    sessions: dict[str, list[tuple[str, str]]] = defaultdict(list)  # patient -> [(date, status)]
    for row in rows:
        week = iso_week(row.service_date)
        per_week[(row.patient_id, week)] += row.attended_seconds
        minimum[(row.patient_id, week)] = max(minimum[(row.patient_id, week)], minimums.get(row.group_id, 0))
        sessions[row.patient_id].append((row.service_date, row.status))
    first_week, out = iso_week(start.isoformat()), []
    weeks_of: dict[str, list[str]] = defaultdict(list)
    for patient_id, week in sorted(per_week):
        weeks_of[patient_id].append(week)
    for patient_id, weeks in weeks_of.items():
        history = sorted(sessions[patient_id])  # (service date, status), oldest first
        seen = 0
        for index, week in enumerate(weeks):
            while seen < len(history) and iso_week(history[seen][0]) <= week:
                seen += 1
            if week < first_week:
                continue
            totals = [per_week[(patient_id, w)] for w in weeks[max(0, index - 2):index + 1]]
            falling = len(totals) == 3 and totals[2] < totals[1] < totals[0]
            recent = [status for _, status in history[max(0, seen - 2):seen]]
            missed = len(recent) == 2 and all(status != "attended" for status in recent)
            seconds, need = per_week[(patient_id, week)], minimum[(patient_id, week)]
            out.append({
                "patient_id": patient_id, "week": week, "attended_seconds": seconds, "minimum_seconds": need,
                "meets_minimum": seconds >= need, "dropout_risk": missed or falling,
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
