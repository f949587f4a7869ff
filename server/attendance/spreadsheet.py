"""The attendance CSV: its columns, cells a spreadsheet cannot take for a formula, the readers'
columns (names, MRNs, local times), and the rows kept beside records for it.

The bytes are those of `csv.writer` (excel dialect, CRLF) over the cells `cells()` makes. A year
is 100,000 rows of 23 cells, so no row is formatted at export if it need not be:

- a record's own 18 cells are written once, when the record is (finalisation, correction), into
  its `Kept` row beside it; the export adds the readers' cells (`csv.writer` quotes each cell on
  its own, so a row's line is its parts' lines joined by a comma);
- a record without one is decoded with the types finalisation writes (`_Typed`: text, whole
  numbers, true/false, intervals of two texts, or missing) and its cells joined by commas in one
  expression, the line checked once: no comma beyond the separators, no quote, tab, CR or LF, and
  no cell starting with =, +, - or @. Such a line is exactly what `csv.writer` writes for the
  row, and nothing in it needed escaping.

Any other row, or a record with other types, goes cell by cell through the escaping and
`csv.writer`, as before.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

import msgspec

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
HEADER = ",".join(CSV_COLUMNS + READER_COLUMNS) + "\r\n"
COMMAS = len(CSV_COLUMNS) + len(READER_COLUMNS) - 1

# A spreadsheet reads a cell starting with one of these as a formula (OWASP's list; a leading
# tab, CR or LF hides the formula sign from a check of the first character only).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
_Hours = dict[str, tuple[str, str] | None]
_UNSEEN = ("", "")  # an hour not converted yet (None: converted, not at one whole-hour offset)
# Every ":MM:SSZ" ending a whole-second UTC time as `server.clock.iso` writes it.
_MINUTE_SECOND_Z = frozenset(f":{m:02d}:{s:02d}Z" for m in range(60) for s in range(60))


def escape(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def local_time(utc: Any, zone: str) -> str | None:
    """A stored UTC time (ISO 8601, Z) in `zone`, ISO 8601 with its offset."""
    if not isinstance(utc, str) or not utc:
        return None
    return datetime.fromisoformat(utc.replace("Z", "+00:00")).astimezone(ZoneInfo(zone)).isoformat()


@dataclass(frozen=True)
class Readers:
    """What the CSV's READER_COLUMNS are made from: patients by id, group timezones by id."""

    patients: dict[str, dict[str, Any]]
    zones: dict[str, str]
    # zone -> "YYYY-MM-DDTHH" in UTC -> that hour's local "YYYY-MM-DDTHH" and offset text, for
    # hours at a whole-hour offset all through: an export converts 200,000 times in a few
    # thousand hours.
    _hours: dict[str, _Hours] = field(default_factory=dict, compare=False, repr=False)
    # (patient id, group id) -> the row's first three readers' cells joined, the group's zone and
    # its hours.
    _who: dict[tuple[str | None, str | None], tuple[str, str, _Hours]] = field(default_factory=dict,
                                                                               compare=False, repr=False)

    def cells(self, patient_id: Any, group_id: Any, first_join: Any, last_leave: Any) -> tuple[Any, ...]:
        patient = self.patients.get(str(patient_id), {})
        zone = self.zones.get(str(group_id), "UTC")
        return (patient.get("display_name"), patient.get("external_id"), zone,
                self.local(first_join, zone), self.local(last_leave, zone))

    def joined(self, patient_id: str | None, group_id: str | None, first_join: str | None,
               last_leave: str | None) -> str:
        """`cells()` of a row with text ids and times, as plain text joined by commas."""
        head, zone, _ = self.who(patient_id, group_id)
        return f"{head}{self.local(first_join, zone) or ''},{self.local(last_leave, zone) or ''}"

    def who(self, patient_id: str | None, group_id: str | None) -> tuple[str, str, _Hours]:
        """A row's first three readers' cells (name, MRN, zone) as plain text, each followed by a
        comma; the zone, and its table of hours."""
        try:
            return self._who[(patient_id, group_id)]
        except KeyError:
            name, external_id, zone, _, _ = self.cells(patient_id, group_id, None, None)
            who = self._who[(patient_id, group_id)] = (f"{_plain(name)},{_plain(external_id)},{zone},", zone,
                                                       self._hours.setdefault(zone, {}))
            return who

    def local(self, utc: Any, zone: str) -> str | None:
        """`local_time(utc, zone)`, from the hour's conversion when `utc` is a whole-second UTC time."""
        if isinstance(utc, str) and len(utc) == 20 and utc[13:] in _MINUTE_SECOND_Z:
            return self.hour_local(utc, zone, self._hours.setdefault(zone, {}))
        return local_time(utc, zone)

    def hour_local(self, utc: str | None, zone: str, hours: _Hours) -> str:
        """`local_time` of a whole-second UTC time ("" for None) through `hours`, the zone's table."""
        if utc is None:
            return ""
        hour = hours.get(utc[:13], _UNSEEN)
        if hour is _UNSEEN:
            hour = hours[utc[:13]] = _hour(utc[:13], zone)
        if hour is None:
            return local_time(utc, zone) or ""
        return hour[0] + utc[13:19] + hour[1]


def _hour(utc_hour: str, zone: str) -> tuple[str, str] | None:
    """The local hour and offset text of a UTC hour, if every second of it has the same whole-hour
    offset (its first and last second say so); else None (converted one by one)."""
    first = local_time(utc_hour + ":00:00Z", zone)
    last = local_time(utc_hour + ":59:59Z", zone)
    assert first is not None and last is not None
    prefix, offset = first[:13], first[19:]
    return (prefix, offset) if first[13:19] == ":00:00" and last == prefix + ":59:59" + offset else None


def cells(values: Iterable[Any]) -> list[str]:
    """A row's cells as text, formula-safe (True/False as true/false, intervals as a/b;c/d)."""
    out = []
    for column, value in enumerate(values):
        if value is None:
            out.append("")
        elif value is True or value is False:
            out.append("true" if value else "false")
        elif column == INTERVALS:
            out.append(escape(";".join(f"{a}/{b}" for a, b in value)))
        else:
            out.append(escape(value))
    return out


class _Typed(msgspec.Struct, gc=False):
    """A record's CSV_COLUMNS with the types finalisation and corrections write (missing: None)."""

    session_id: str | None = None
    group_id: str | None = None
    patient_id: str | None = None
    service_date: str | None = None
    status: str | None = None
    first_join: str | None = None
    last_leave: str | None = None
    attended_seconds: int | None = None
    attended_minutes: int | None = None
    waited_seconds: int | None = None
    reconnects: int | None = None
    video_seconds: int | None = None
    audio_only_seconds: int | None = None
    intervals: list[tuple[str, str]] | None = None
    corrected: bool | None = None
    correction_reason: str | None = None
    billing_record_id: str | None = None
    short_join: bool | None = None


class _Loose(msgspec.Struct, gc=False):
    """A record's CSV_COLUMNS whatever their types (an older or hand-made record)."""

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


_typed = msgspec.json.Decoder(_Typed)
_loose = msgspec.json.Decoder(_Loose)
_FLAG = {None: "", True: "true", False: "false"}


class Kept(msgspec.Struct, array_like=True, gc=False):
    """What the CSV needs of a record, kept beside it (`attendance:csv`, written with the record at
    finalisation and correction, removed with it at purge): what chooses it, what its readers'
    cells are made from (its times are whole-second UTC or missing), and its own cells as
    `csv.writer` writes them (`line`, no line end). A year's export reads these instead of
    decoding and formatting 100,000 records."""

    service_date: str
    group_id: str
    patient_id: str
    first_join: str | None
    last_leave: str | None
    line: str


_kept = msgspec.json.Decoder(Kept)


def kept_row(raw: str) -> str | None:
    """The `Kept` (JSON) of a stored record text; None for a record the CSV reads whole (one with
    other types than finalisation writes, without a service date, group or patient, or with
    times other than whole-second UTC)."""
    try:
        r = _typed.decode(raw)
    except msgspec.ValidationError:
        return None
    if r.service_date is None or r.group_id is None or r.patient_id is None:
        return None
    if not (_whole_second(r.first_join) and _whole_second(r.last_leave)):
        return None
    own = _written(cells(msgspec.structs.astuple(r)))
    return msgspec.json.encode(Kept(r.service_date, r.group_id, r.patient_id, r.first_join, r.last_leave,
                                    own)).decode()


def _whole_second(utc: str | None) -> bool:
    """None, or a time as `server.clock.iso` writes it (what `Readers.local` converts by the hour)."""
    if utc is None:
        return True
    if len(utc) != 20 or utc[13:] not in _MINUTE_SECOND_Z:
        return False
    try:
        datetime.fromisoformat(utc[:19])
    except ValueError:
        return False
    return True


def kept(text: str) -> Kept:
    return _kept.decode(text)


def texts_csv(texts: Iterable[str | Kept], people: Readers) -> str:
    """The CSV of stored record texts (JSON) or their kept rows, one at a time: what a row is made
    of is freed as soon as it is written, so the collector has nothing to do."""
    out = Writer()
    parts = out.parts
    for entry in texts:
        if type(entry) is Kept:
            head, zone, hours = people.who(entry.patient_id, entry.group_id)
            readers = f"{head}{people.hour_local(entry.first_join, zone, hours)},"\
                      f"{people.hour_local(entry.last_leave, zone, hours)}"
            if not _needs_nothing(readers, len(READER_COLUMNS) - 1):
                readers = _written(cells(people.cells(entry.patient_id, entry.group_id, entry.first_join,
                                                      entry.last_leave)))
            # csv.writer quotes each cell on its own: a row's line is its parts' lines joined.
            parts.append(f"{entry.line},{readers}\r\n")
        else:
            parts.append(out.record_line(cast(str, entry), people))
    return out.text()


def _needs_nothing(line: str, commas: int = COMMAS) -> bool:
    """Whether a row's cells joined by commas are the row's CSV line as they are: no cell holds a
    comma, quote, tab, CR or LF, or starts with a formula sign."""
    # One character is looked for faster than two: "=" and "@" anywhere send the row the long way
    # (rarely: still exact); "+" (a positive UTC offset) and "-" (every date) are looked for
    # after a comma.
    return (line.count(",") == commas and '"' not in line and "\n" not in line and "\r" not in line
            and "\t" not in line and "=" not in line and "@" not in line and line[:1] not in "+-"
            and ",-" not in line and ("+" not in line or ",+" not in line))


class Writer:
    """The CSV text of rows of CSV_COLUMNS + READER_COLUMNS values, header first."""

    def __init__(self) -> None:
        self.parts = [HEADER]

    def row(self, values: tuple[Any, ...]) -> None:
        self.parts.append(self.line(values))

    def line(self, values: tuple[Any, ...]) -> str:
        intervals = values[INTERVALS]
        plain = [value if type(value) is str else _plain(value) for value in values[:INTERVALS]]
        plain.append(_plain(intervals) if intervals is None or intervals is True or intervals is False
                     else ";".join([f"{a}/{b}" for a, b in intervals]))
        plain += [value if type(value) is str else _plain(value) for value in values[INTERVALS + 1:]]
        line = ",".join(plain)
        if _needs_nothing(line):
            return line + "\r\n"
        return _written(cells(values)) + "\r\n"

    def record_line(self, raw: str, people: Readers) -> str:
        """The line of a stored record text (JSON)."""
        try:
            r = _typed.decode(raw)
        except msgspec.ValidationError:
            loose = _loose.decode(raw)
            return self.line(msgspec.structs.astuple(loose)
                             + people.cells(loose.patient_id, loose.group_id, loose.first_join, loose.last_leave))
        iv, n = r.intervals, None
        line = (
            f"{r.session_id or ''},{r.group_id or ''},{r.patient_id or ''},{r.service_date or ''},{r.status or ''},"
            f"{r.first_join or ''},{r.last_leave or ''},"
            f"{'' if r.attended_seconds is n else r.attended_seconds},"
            f"{'' if r.attended_minutes is n else r.attended_minutes},"
            f"{'' if r.waited_seconds is n else r.waited_seconds},{'' if r.reconnects is n else r.reconnects},"
            f"{'' if r.video_seconds is n else r.video_seconds},"
            f"{'' if r.audio_only_seconds is n else r.audio_only_seconds},"
            f"{'' if iv is None else ';'.join([a + '/' + b for a, b in iv])},{_FLAG[r.corrected]},"
            f"{r.correction_reason or ''},{r.billing_record_id or ''},{_FLAG[r.short_join]},"
            f"{people.joined(r.patient_id, r.group_id, r.first_join, r.last_leave)}"
        )
        if _needs_nothing(line):
            return line + "\r\n"
        return self.line(msgspec.structs.astuple(r) + people.cells(r.patient_id, r.group_id, r.first_join,
                                                                   r.last_leave))

    def text(self) -> str:
        return "".join(self.parts)


def _written(row_cells: list[str]) -> str:
    """What `csv.writer` (excel dialect) writes for cells, without the line end."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(row_cells)
    return buffer.getvalue()[:-2]


def _plain(value: Any) -> str:
    """A cell's text before escaping: what `cells` makes of it when nothing needs escaping."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)
