"""Records people read: the short-join rule (recorded, flagged, billed below minimum), the CSV's
names, MRNs and local times, one dropout-risk reading for the card and the chart, and a
facilitator's view of their own groups' attendance only."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from server.app import create_app
from server.attendance import reports, spreadsheet
from server.auth.staff import Role
from server.billing import outbox
from server.pages.charts import weekly_hours_chart
from server.settings import Settings, SettingsError
from server.store import keys
from tests.helpers import Api, World

WEBHOOK_FIELDS = {
    "record_id", "supersedes", "session_id", "group_id", "program", "patient_id", "external_patient_id",
    "service_date", "session_started_at", "session_ended_at", "first_join", "last_leave", "intervals",
    "attended_seconds", "attended_minutes", "session_seconds", "waited_seconds", "place_of_service", "modality",
    "video_seconds", "audio_only_seconds", "below_minimum", "facilitator", "participants_present", "suggested",
}
# The CSV's columns before names and local times were added: they keep their places.
CSV_BEFORE = [
    "session_id", "group_id", "patient_id", "service_date", "status", "first_join", "last_leave",
    "attended_seconds", "attended_minutes", "waited_seconds", "reconnects", "video_seconds",
    "audio_only_seconds", "intervals", "corrected", "correction_reason", "billing_record_id",
]


@pytest.fixture
async def api(aiohttp_client: Any, settings: Settings, redis: Any, clock: Any) -> Api:
    """The app with heartbeats that outlast the test's jumps of the clock: the patients here do
    not answer pings while the clock moves on by minutes, and must not be dropped for it."""
    return await _app(aiohttp_client, settings, redis, clock)


async def _app(aiohttp_client: Any, settings: Settings, redis: Any, clock: Any, **more: Any) -> Api:
    configured = settings.replace(heartbeat_timeout_seconds=6 * 3600, staff_idle_timeout_seconds=6 * 3600, **more)
    return Api(await aiohttp_client(create_app(configured, redis=redis, clock=clock)), redis, clock, configured)


async def _left(api: Api, session_id: str, patient_id: str) -> None:
    async with asyncio.timeout(5):
        while not any(f'"{patient_id}"' in r and '"left"' in r
                      for r in await api.redis.lrange(keys.session_events(session_id), 0, -1)):
            await asyncio.sleep(0.01)


async def short_and_long(api: Api, short_seconds: float) -> tuple[World, str, dict[str, Any]]:
    """Patient 0 stays `short_seconds` and leaves; patient 1 stays ten minutes. No billable minimum
    of minutes (0), so only the short-join rule can flag anyone."""
    world = await api.world(patients=2, billing={"code": "90853", "min_billable_minutes": 0})
    await api.request(world.admin, "PATCH", f"/api/v1/patients/{world.patients[0]['id']}",
                      {"external_id": "MRN-0042"})
    session_id = await api.open(world)
    short = await api.patient(world.tokens[0])
    long = await api.patient(world.tokens[1])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True})
    await short.until("admitted")
    await long.until("admitted")
    api.clock.advance(short_seconds)
    await short.send({"type": "leave"})
    await _left(api, session_id, world.patients[0]["id"])
    api.clock.advance(10 * 60 - short_seconds)
    await api.post(world.facilitator, f"/sessions/{session_id}/end")
    answer = await api.get(world.facilitator, f"/sessions/{session_id}/attendance")
    assert answer["final"] is True
    return world, session_id, {r["patient_id"]: r for r in answer["records"]}


async def test_a_join_under_the_minimum_is_recorded_flagged_and_billed_below_minimum(api: Api) -> None:
    world, session_id, records = await short_and_long(api, 30)
    short, long = (records[p["id"]] for p in world.patients)
    assert short["status"] == "attended" and short["attended_seconds"] == 30 and short["short_join"] is True
    assert long["status"] == "attended" and long["short_join"] is False

    bills = await outbox.records_of(api.redis, [short["billing_record_id"], long["billing_record_id"]])
    short_bill, long_bill = bills[short["billing_record_id"]], bills[long["billing_record_id"]]
    assert set(short_bill) == set(long_bill) == WEBHOOK_FIELDS  # the contract's body, unchanged
    assert short_bill["below_minimum"] is True and short_bill["suggested"]["units"] == 0
    assert short_bill["suggested"]["modifiers"] == [] and "shorter than" in short_bill["suggested"]["rule"]
    assert long_bill["below_minimum"] is False and long_bill["suggested"]["units"] == 1
    assert short_bill["participants_present"] == 2  # a short join still attended

    page = await api.request(world.admin, "GET", "/admin/attendance")
    assert "short join" in page and "shorter than 60 seconds" in page
    billing_page = await api.request(world.admin, "GET", "/admin/billing")
    assert billing_page.count("below minimum</span>") == 1


async def test_a_correction_applies_the_same_rule(api: Api) -> None:
    world, session_id, records = await short_and_long(api, 30)
    long = records[world.patients[1]["id"]]
    start = long["first_join"]
    end = (datetime.fromisoformat(start.replace("Z", "+00:00")) + timedelta(seconds=45)).strftime("%Y-%m-%dT%H:%M:%SZ")
    corrected = await api.post(world.admin, f"/sessions/{session_id}/attendance/{world.patients[1]['id']}/correction",
                               {"intervals": [[start, end]], "reason": "left early, camera froze"})
    assert corrected["attended_seconds"] == 45 and corrected["short_join"] is True
    bill = (await outbox.records_of(api.redis, [corrected["billing_record_id"]]))[corrected["billing_record_id"]]
    assert bill["below_minimum"] is True and bill["supersedes"] == long["billing_record_id"]


async def test_the_minimum_is_a_setting(aiohttp_client: Any, settings: Settings, redis: Any, clock: Any) -> None:
    api = await _app(aiohttp_client, settings, redis, clock, min_attended_seconds=120)
    world, _, records = await short_and_long(api, 90)
    assert records[world.patients[0]["id"]]["short_join"] is True  # 90 s < 120 s

    assert Settings.from_env({"PORCHLIGHT_MIN_ATTENDED_SECONDS": "0"}).min_attended_seconds == 0
    for bad in ("-1", "sixty", "3601"):
        with pytest.raises(SettingsError, match="PORCHLIGHT_MIN_ATTENDED_SECONDS"):
            Settings.from_env({"PORCHLIGHT_MIN_ATTENDED_SECONDS": bad})


async def test_the_csv_adds_names_mrn_and_local_times_after_the_columns_it_had(api: Api) -> None:
    world, session_id, records = await short_and_long(api, 30)
    text = await api.request(world.admin, "GET", "/api/v1/attendance.csv")
    header = next(csv.reader(io.StringIO(text)))
    assert header[:len(CSV_BEFORE)] == CSV_BEFORE
    assert header[len(CSV_BEFORE):] == ["short_join", *spreadsheet.READER_COLUMNS]
    rows = {r["patient_id"]: r for r in csv.DictReader(io.StringIO(text)) if r["session_id"] == session_id}
    short = rows[world.patients[0]["id"]]
    assert short["display_name"] == "Patient 0" and short["external_id"] == "MRN-0042"
    assert short["short_join"] == "true" and rows[world.patients[1]["id"]]["short_join"] == "false"
    assert short["timezone"] == "America/Chicago"
    # The same moment, in the group's zone with its offset (Chicago is 5 or 6 hours behind UTC).
    utc = datetime.fromisoformat(short["first_join"].replace("Z", "+00:00"))
    local = datetime.fromisoformat(short["first_join_local"])
    offset = local.utcoffset()
    assert local == utc and offset is not None and offset.total_seconds() in (-5 * 3600, -6 * 3600)
    assert rows[world.patients[1]["id"]]["external_id"] == ""


def test_the_risk_card_and_the_chart_flag_the_same_patients() -> None:
    # Ana was at risk two weeks ago and is not now; Ben is at risk in his latest week; Cy never.
    weeks = [
        {"patient_id": "ana", "week": "2026-W10", "attended_seconds": 0, "minimum_seconds": 0,
         "meets_minimum": True, "dropout_risk": True},
        {"patient_id": "ana", "week": "2026-W12", "attended_seconds": 9 * 3600, "minimum_seconds": 0,
         "meets_minimum": True, "dropout_risk": False},
        {"patient_id": "ben", "week": "2026-W11", "attended_seconds": 3600, "minimum_seconds": 0,
         "meets_minimum": True, "dropout_risk": False},
        {"patient_id": "ben", "week": "2026-W12", "attended_seconds": 0, "minimum_seconds": 0,
         "meets_minimum": True, "dropout_risk": True},
        {"patient_id": "cy", "week": "2026-W12", "attended_seconds": 0, "minimum_seconds": 0,
         "meets_minimum": True, "dropout_risk": False},
    ]
    flagged = reports.at_risk(weeks)
    assert flagged == {"ben": "2026-W12"}
    chart = weekly_hours_chart(weeks, {"ana": "Ana", "ben": "Ben", "cy": "Cy"}, set(flagged))
    assert {row.name for row in chart.rows if row.at_risk} == {"Ben"}


async def test_a_facilitator_sees_their_own_groups_attendance_and_no_other(api: Api) -> None:
    world, _, _ = await short_and_long(api, 30)
    sam = await api.staff("sam", Role.FACILITATOR, name="Sam K.")
    other = await api.post(world.admin, "/groups", {"name": "Morning PHP", "program": "PHP",
                                                    "facilitator_ids": [sam.user_id]}, expect=201)
    bea = await api.post(world.admin, "/patients", {"display_name": "Bea Other"}, expect=201)
    link = await api.post(world.admin, f"/groups/{other['id']}/enrollments", {"patient_id": bea["id"]}, expect=201)
    opened = await api.post(sam, f"/groups/{other['id']}/sessions", expect=201)
    patient = await api.patient(link["join_url"].rsplit("/j/", 1)[1])
    await api.post(sam, f"/sessions/{opened['id']}/admit", {"all": True})
    await patient.until("admitted")
    api.clock.advance(5 * 60)
    await api.post(sam, f"/sessions/{opened['id']}/end")

    console = await api.request(world.facilitator, "GET", "/console")
    assert f'href="/console/attendance?group_id={world.group["id"]}"' in console
    mine = await api.request(world.facilitator, "GET", "/console/attendance")
    assert "Patient 0" in mine and "Patient 1" in mine and "short join" in mine
    assert "Bea Other" not in mine and "Morning PHP" not in mine and "Download CSV" not in mine
    # Asking for another group's attendance shows one's own instead.
    asked = await api.request(world.facilitator, "GET", f"/console/attendance?group_id={other['id']}"
                                                        f"&patient_id={bea['id']}")
    assert "Bea Other" not in asked and "Patient 0" in asked
    theirs = await api.request(sam, "GET", "/console/attendance")
    assert "Bea Other" in theirs and "Patient 0" not in theirs
    # The admin sees every group, and the CSV.
    everyone = await api.request(world.admin, "GET", "/admin/attendance")
    assert "Bea Other" in everyone and "Patient 0" in everyone and "Download CSV" in everyone
    # Signed out: to the sign-in page; the facilitator's page is audited like the admin's.
    resp = await api.client.get("/console/attendance", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login")
    pulls = [json.loads(raw) for raw in await api.redis.lrange(keys.audit_log(), 0, -1)]
    assert any(e["action"] == "attendance.export" and e["actor"] == world.facilitator.user_id for e in pulls)
