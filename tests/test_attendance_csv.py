"""The attendance CSV never hands a spreadsheet a formula: cells that could start one are text."""

from __future__ import annotations

import csv
import io

import pytest

from server.attendance.reports import to_csv
from server.attendance.spreadsheet import CSV_COLUMNS, READER_COLUMNS
from server.clock import iso, to_ms
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
