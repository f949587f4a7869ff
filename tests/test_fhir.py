"""FHIR R4 search: Encounters from the attendance records, every resource validated with the
`fhir.resources` R4B models; bad searches answered with OperationOutcomes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.operationoutcome import OperationOutcome

from server.app import create_app
from server.clock import ManualClock
from server.settings import Settings
from server.store.connection import Redis
from tests.helpers import Api, Staff, World

MIN = 60


@pytest.fixture
async def api(aiohttp_client: Any, settings: Settings, redis: Redis, clock: ManualClock) -> Api:
    long = settings.replace(heartbeat_timeout_seconds=6 * 3600, staff_idle_timeout_seconds=6 * 3600)
    return Api(await aiohttp_client(create_app(long, redis=redis, clock=clock)), redis, clock, long)


async def fhir(api: Api, staff: Staff | None, query: str, expect: int = 200) -> dict[str, Any]:
    headers = {"Cookie": f"porchlight_session={staff.cookie}"} if staff else {}
    resp = await api.client.get(f"/api/v1/fhir/{query}", headers=headers)
    assert resp.status == expect, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/fhir+json")
    body: dict[str, Any] = json.loads(await resp.read())
    return body


async def a_session(api: Api) -> tuple[World, str, dict[str, Any]]:
    """Alex (MRN 0042) attends 50 minutes from home; Blair checks in but is declined; Casey never comes."""
    world = await api.world(patients=2, billing={"code": "90853", "min_billable_minutes": 45})
    alex = await api.post(world.admin, "/patients", {"display_name": "Alex R.", "external_id": "MRN-0042"},
                          expect=201)
    enrolled = await api.post(world.admin, f"/groups/{world.group['id']}/enrollments", {"patient_id": alex["id"]},
                              expect=201)
    session_id = await api.open(world)
    a = await api.patient(enrolled["join_url"].rsplit("/j/", 1)[1], "home")
    b = await api.patient(world.tokens[0], "home")
    await api.post(world.facilitator, f"/sessions/{session_id}/decline", {"patient_id": world.patients[0]["id"]})
    await b.until("declined")
    api.clock.advance(5 * MIN)
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [alex["id"]]})
    await a.until("admitted")
    api.clock.advance(50 * MIN)
    await api.post(world.facilitator, f"/sessions/{session_id}/end")
    return world, session_id, alex


def validated(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset" and bundle["total"] == len(bundle["entry"])
    for entry in bundle["entry"]:
        Encounter.model_validate(entry["resource"])
        assert entry["search"]["mode"] == "match"
        assert entry["fullUrl"].endswith(f"/api/v1/fhir/Encounter/{entry['resource']['id']}")
    return [e["resource"] for e in bundle["entry"]]


async def test_a_session_gives_one_valid_encounter_per_attending_patient(api: Api) -> None:
    world, session_id, alex = await a_session(api)
    found = validated(await fhir(api, world.admin, f"Encounter?session={session_id}"))
    assert len(found) == 1  # the declined and the absent patient had no encounter
    encounter = found[0]
    record = next(r for r in (await api.get(world.admin, f"/sessions/{session_id}/attendance"))["records"]
                  if r["patient_id"] == alex["id"])
    assert encounter["status"] == "finished"
    assert encounter["class"] == {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR",
                                  "display": "virtual"}
    assert encounter["period"] == {"start": record["first_join"], "end": record["last_leave"]}
    assert encounter["length"]["value"] == record["attended_minutes"] == 50
    assert encounter["length"]["code"] == "min" and encounter["length"]["system"] == "http://unitsofmeasure.org"
    assert encounter["subject"]["reference"] == "Patient/" + alex["id"].replace("_", ".")
    assert encounter["subject"]["identifier"]["value"] == "MRN-0042"
    individual = encounter["participant"][0]["individual"]
    assert individual["identifier"] == {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}
    assert individual["reference"] == "Practitioner/" + world.facilitator.user_id.replace("_", ".")
    for concept in (encounter["serviceType"], encounter["type"][0]):
        assert concept["coding"] == [{"system": "http://www.ama-assn.org/go/cpt", "code": "90853"}]


async def test_a_patients_encounters_from_a_date(api: Api) -> None:
    world, session_id, alex = await a_session(api)
    day = (await api.get(world.admin, f"/sessions/{session_id}/attendance"))["records"][0]["service_date"]
    for query, count in ((f"patient={alex['id']}", 1), (f"patient=Patient/{alex['id'].replace('_', '.')}", 1),
                         (f"patient={alex['id']}&date=ge{day}", 1), (f"patient={alex['id']}&date=gt{day}", 0),
                         (f"patient={alex['id']}&date=ge2000-01-01&date=lt{day}", 0),
                         (f"patient={world.patients[1]['id']}", 0), ("patient=pat_nobody", 0),
                         (f"session={session_id}&patient={world.patients[0]['id']}", 0),
                         ("session=ses_nothing", 0)):
        found = validated(await fhir(api, world.admin, f"Encounter?{query}"))
        assert len(found) == count, query


@pytest.mark.parametrize(("query", "status", "issue"), [
    ("Encounter", 400, "invalid"),
    ("Encounter?patient=pat_x&date=2026-13-01", 400, "invalid"),
    ("Encounter?patient=pat_x&date=after2026-01-01", 400, "invalid"),
    ("Encounter?patient=pat_x&dat=ge2026-01-01", 400, "not-supported"),
    ("Encounter?patient=pat%20x", 400, "invalid"),
    ("Encounter?patient=pat_x&patient=pat_y", 400, "invalid"),
])
async def test_bad_searches_get_an_operation_outcome(api: Api, query: str, status: int, issue: str) -> None:
    world = await api.world(patients=0)
    outcome = await fhir(api, world.admin, query, status)
    OperationOutcome.model_validate(outcome)
    assert outcome["issue"][0]["code"] == issue and outcome["issue"][0]["diagnostics"]
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "bad_request"


async def test_only_admins_search(api: Api) -> None:
    world = await api.world(patients=0)
    for staff, status, code in ((None, 401, "unauthorized"), (world.facilitator, 403, "forbidden")):
        outcome = await fhir(api, staff, "Encounter?patient=pat_x", status)
        OperationOutcome.model_validate(outcome)
        assert outcome["issue"][0]["details"]["coding"][0]["code"] == code
