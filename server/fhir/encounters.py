"""Encounters from the attendance records: one per attending patient per ended session."""

from __future__ import annotations

from datetime import date
from typing import Any

from server.attendance import reports
from server.attendance.finalise import session_context
from server.clinic.patients import patients_by_id
from server.fhir import resources
from server.fhir.search import EARLIEST, DateRange
from server.store import sessions
from server.store.connection import Redis


async def search(redis: Redis, public_url: str, *, session_id: str | None, patient_id: str | None,
                 dates: DateRange) -> list[dict[str, Any]]:
    """The Encounters matching every given parameter, oldest first."""
    if session_id is not None:
        record = await sessions.read(redis, session_id)
        rows = await reports.session_records(redis, session_id, record.started_at) if record else []
    else:
        rows = await reports.records(redis, dates.first, dates.last, patient_id=patient_id)
    rows = [r for r in rows if r["status"] == "attended" and r["service_date"] in dates
            and (patient_id is None or r["patient_id"] == patient_id)]
    contexts = {}
    for sid in {r["session_id"] for r in rows}:
        contexts[sid] = await session_context(redis, sid)
    patients = await patients_by_id(redis, sorted({r["patient_id"] for r in rows}))
    out = []
    for row in rows:
        ctx = contexts[row["session_id"]]
        if ctx is None:  # not ended (cannot be: records are written at finalisation), or its group is gone
            continue
        out.append(resources.encounter(row, group=ctx["group"], patient=patients.get(row["patient_id"]),
                                       facilitator=ctx["facilitator"], public_url=public_url))
    return sorted(out, key=lambda e: (e["period"]["start"] or "", e["id"]))


async def read(redis: Redis, public_url: str, encounter_id: str) -> dict[str, Any] | None:
    """The Encounter of that id (`<session>-<patient>` in FHIR spelling), or None. Ids may hold
    `-`, so each split before a `pat.` is tried; only a real attendance record answers."""
    for at in range(len(encounter_id)):
        if encounter_id[at] != "-" or not encounter_id.startswith("pat.", at + 1):
            continue
        session_id = resources.porchlight_id(encounter_id[:at])
        patient_id = resources.porchlight_id(encounter_id[at + 1:])
        everything = DateRange(EARLIEST, date.max)
        found = await search(redis, public_url, session_id=session_id, patient_id=patient_id, dates=everything)
        if found:
            return found[0]
    return None
