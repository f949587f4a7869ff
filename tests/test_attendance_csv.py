"""The attendance CSV never hands a spreadsheet a formula: cells that could start one are text."""

from __future__ import annotations

import csv
import io

import pytest

from server.attendance import reports
from server.attendance.reports import to_csv
from server.attendance.spreadsheet import CSV_COLUMNS, READER_COLUMNS, kept_row
from server.backup import purge
from server.clock import iso, to_ms
from server.store import keys
from tests.helpers import Api


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", "\n"])
def test_a_cell_that_could_start_a_formula_is_prefixed_with_a_quote(start: str) -> None:
    reason = start + "HYPERLINK(\"https://evil.example\",\"details\")"
    rows = list(csv.DictReader(io.StringIO(to_csv([{"correction_reason": reason, "status": "attended"}]))))
    assert rows[0]["correction_reason"] == "'" + reason
    assert rows[0]["status"] == "attended"  # ordinary cells are as they were
    assert list(rows[0]) == CSV_COLUMNS + READER_COLUMNS


async def test_a_correction_reason_starting_with_a_newline_reaches_the_csv_as_text(api: Api) -> None:
    world = await api.world(patients=1)
    session_id = await api.open(world)
    opened = api.clock.now()
    patient = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await patient.until("admitted")
    api.clock.advance(10 * 60)  # within the staff idle timeout
    await api.post(world.facilitator, f"/sessions/{session_id}/end")
    reason = "\n=cmd|' /C calc'!A0"  # a multi-line reason is allowed; its first line is empty
    await api.post(world.admin, f"/sessions/{session_id}/attendance/{world.patients[0]['id']}/correction",
                   {"intervals": [[iso(to_ms(opened)), iso(to_ms(opened + 5 * 60))]], "reason": reason})
    text = await api.request(world.admin, "GET", "/api/v1/attendance.csv")
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["session_id"] == session_id]
    assert [r["correction_reason"] for r in rows] == ["'" + reason]


async def test_the_row_kept_for_the_csv_follows_its_record_through_correction_and_purge(api: Api) -> None:
    world = await api.world(patients=2)
    session_id = await api.open(world)
    opened = api.clock.now()
    patient = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await patient.until("admitted")
    api.clock.advance(10 * 60)
    await api.post(world.facilitator, f"/sessions/{session_id}/end")

    async def kept_rows_match_records() -> int:
        records = await api.redis.hgetall(keys.attendance_records())
        assert await api.redis.hgetall(keys.attendance_csv()) == {key: kept_row(raw) for key, raw in records.items()}
        return len(records)

    assert await kept_rows_match_records() == 2  # finalised: one attended, one absent
    first = world.patients[0]["id"]
    await api.post(world.admin, f"/sessions/{session_id}/attendance/{first}/correction",
                   {"intervals": [[iso(to_ms(opened)), iso(to_ms(opened + 60))]], "reason": "left, then back"})
    assert await kept_rows_match_records() == 2
    # The export reads the kept rows: the same CSV as from the records themselves.
    text = await api.request(world.admin, "GET", "/api/v1/attendance.csv")
    records = await reports.records(api.redis, *reports.default_range(api.clock))
    people = await reports.readers(api.redis, {r["patient_id"] for r in records})
    assert text == reports.to_csv(records, people) and "left, then back" in text

    api.clock.advance(3 * 366 * 86400)
    assert (await purge(api.redis, api.clock, 2, dry_run=False))["attendance_records"] == 2
    assert await kept_rows_match_records() == 0
