"""The attendance CSV's quick lines, and the rows kept beside records, are the bytes of the
cell-by-cell escaping through `csv.writer`, whatever a record holds, and the local times from an
hour's conversion are those of converting each time on its own, across daylight-saving changes
and half-hour zones."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from server.attendance import reports, spreadsheet

ZONES = ["UTC", "America/Chicago", "Europe/London", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe",
         "America/St_Johns", "Pacific/Chatham"]


def reference_csv(rows: list[dict[str, Any]], people: spreadsheet.Readers) -> str:
    """The CSV as it was made before the quick lines: every cell escaped, every row through csv.writer."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(spreadsheet.CSV_COLUMNS + spreadsheet.READER_COLUMNS)
    for row in rows:
        values = [row.get(column) for column in spreadsheet.CSV_COLUMNS]
        patient = people.patients.get(str(row.get("patient_id")), {})
        zone = people.zones.get(str(row.get("group_id")), "UTC")
        values += [patient.get("display_name"), patient.get("external_id"), zone,
                   spreadsheet.local_time(row.get("first_join"), zone),
                   spreadsheet.local_time(row.get("last_leave"), zone)]
        cells = []
        for column, value in enumerate(values):
            if value is None:
                cells.append("")
            elif isinstance(value, bool):
                cells.append("true" if value else "false")
            elif column == spreadsheet.INTERVALS:
                cells.append(spreadsheet.escape(";".join(f"{a}/{b}" for a, b in value)))
            else:
                cells.append(spreadsheet.escape(value))
        writer.writerow(cells)
    return buffer.getvalue()


def outcome(make: Any) -> str:
    try:
        return str(make())
    except Exception as exc:  # a record the CSV cannot take fails the same way on both paths
        return f"error: {type(exc).__name__}"


tricky = st.text(alphabet=st.sampled_from("=+-@\t\r\n,;\"' a\u00e9\u2028\x00z0:/"), max_size=6)
stamp = st.integers(1_767_225_600, 1_798_761_600).map(
    lambda s: datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
value = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), tricky, stamp,
                  st.floats(allow_nan=False, allow_infinity=False, width=32))
intervals = st.one_of(st.none(), st.booleans(), st.lists(st.lists(stamp, min_size=2, max_size=2), max_size=3),
                      st.lists(st.tuples(tricky, st.integers(-5, 5)).map(list), max_size=2),
                      st.lists(st.text(alphabet="ab-=", min_size=2, max_size=2), max_size=2))
record = st.fixed_dictionaries(
    {},
    optional={
        **{column: value for column in spreadsheet.CSV_COLUMNS if column != "intervals"},
        "patient_id": st.sampled_from(["pat_a", "pat_b", "pat_c"]),
        "group_id": st.sampled_from(["grp_a", "grp_b", "grp_c", "grp_gone"]),
        "first_join": st.one_of(st.none(), stamp, tricky),
        "last_leave": st.one_of(st.none(), stamp),
        "intervals": intervals,
        "location": tricky,
    },
)
# Records with the types finalisation writes (their rows are kept), text that could be anything.
text_or_none = st.none() | tricky | stamp
typed_record = st.fixed_dictionaries(
    {"service_date": tricky | stamp, "group_id": st.sampled_from(["grp_a", "grp_b", "grp_c", "grp_gone", "=x,y"]),
     "patient_id": st.sampled_from(["pat_a", "pat_b", "pat_c", "-1"])},
    optional={
        **{column: text_or_none for column in ("session_id", "status", "correction_reason", "billing_record_id")},
        **{column: st.none() | st.integers(-5, 10**6) for column in spreadsheet.CSV_COLUMNS if "seconds" in column
           or column in ("attended_minutes", "reconnects")},
        "first_join": st.none() | stamp | tricky, "last_leave": st.none() | stamp,
        "intervals": st.none() | st.lists(st.lists(tricky | stamp, min_size=2, max_size=2), max_size=3),
        "corrected": st.none() | st.booleans(), "short_join": st.none() | st.booleans(),
    },
)
people = st.builds(
    lambda names, zones: spreadsheet.Readers(
        {f"pat_{k}": {"display_name": n, "external_id": e} for k, (n, e) in zip("ab", names, strict=False)},
        dict(zip(["grp_a", "grp_b", "grp_c"], zones, strict=False))),
    st.lists(st.tuples(tricky, st.none() | tricky), min_size=2, max_size=2),
    st.lists(st.sampled_from(ZONES), min_size=3, max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(rows=st.lists(record | typed_record, max_size=6), readers=people)
def test_the_csv_is_the_cell_by_cell_csv_of_any_record(rows: list[dict[str, Any]],
                                                       readers: spreadsheet.Readers) -> None:
    texts = [json.dumps(row) for row in rows]
    want = outcome(lambda: reference_csv(rows, readers))
    assert outcome(lambda: spreadsheet.texts_csv(texts, readers)) == want
    assert outcome(lambda: reports.to_csv(rows, readers)) == want
    # The same from the rows kept beside records (spreadsheet.Kept), where a record has one.
    kept: list[str | spreadsheet.Kept] = []
    for text in texts:
        row = spreadsheet.kept_row(text)
        kept.append(text if row is None else spreadsheet.kept(row))
    assert outcome(lambda: spreadsheet.texts_csv(kept, readers)) == want


# Moments around daylight-saving changes of the zones above in 2026 (and a year-end), to the second.
CHANGES = [datetime(2026, 3, 8, 8, tzinfo=UTC), datetime(2026, 11, 1, 7, tzinfo=UTC),
           datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC),
           datetime(2026, 4, 4, 15, tzinfo=UTC), datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
           datetime(2026, 4, 4, 14, tzinfo=UTC), datetime(2026, 9, 26, 14, tzinfo=UTC),
           datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)]


@settings(max_examples=300, deadline=None)
@given(moments=st.lists(st.tuples(st.sampled_from(CHANGES), st.integers(-7300, 7300)), min_size=1, max_size=40),
       zone=st.sampled_from(ZONES))
def test_local_times_from_the_hour_equal_each_converted_alone(moments: list[tuple[datetime, int]], zone: str) -> None:
    readers = spreadsheet.Readers({}, {})
    for change, seconds in moments:
        utc = (change + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert readers.local(utc, zone) == spreadsheet.local_time(utc, zone)
        assert readers.local(utc, zone) == datetime.fromisoformat(utc).astimezone(ZoneInfo(zone)).isoformat()
