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

    # The entry's fullUrl is where the resource is read.
    assert await fhir(api, world.admin, f"Encounter/{encounter['id']}") == encounter
    for missing in (encounter["id"].replace("-pat.", "-pat.x"), "ses.nothing-pat.nobody", "no_such_id"):
        outcome = await fhir(api, world.admin, f"Encounter/{missing}", 404)
        OperationOutcome.model_validate(outcome)
        assert outcome["issue"][0]["code"] == "not-found"
    await fhir(api, world.facilitator, f"Encounter/{encounter['id']}", 403)


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


async def test_a_patients_phq9_and_gad7_as_observations_with_their_questionnaire_responses(api: Api) -> None:
    from fhir.resources.R4B.observation import Observation
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

    from server.measures.instruments import GAD7, PHQ9
    from tests.test_measures import answers_summing_to

    world = await api.world(patients=2, questionnaires=[{"instrument": "PHQ-9", "every": "session"},
                                                        {"instrument": "GAD-7", "every": "session"}])
    await api.open(world)
    sock = await api.patient(world.tokens[0])
    offered = {}
    for _ in range(2):
        frame = await sock.until("questionnaire")
        offered[frame["instrument"]] = frame
    phq_answers, gad_answers = answers_summing_to(PHQ9, 12), answers_summing_to(GAD7, 16)
    for instrument, answers in (("PHQ-9", phq_answers), ("GAD-7", gad_answers)):
        await sock.send({"type": "questionnaire_response", "id": offered[instrument]["id"], "answers": answers})
        await sock.until("questionnaire_saved")
    patient = world.patients[0]["id"]

    bundle = await fhir(api, world.admin, f"Observation?patient={patient}")
    Bundle.model_validate(bundle)
    observations = {}
    for entry in bundle["entry"]:
        Observation.model_validate(entry["resource"])
        observations[entry["resource"]["code"]["coding"][0]["code"]] = entry["resource"]
    assert set(observations) == {"44261-6", "70274-6"}
    phq, gad = observations["44261-6"], observations["70274-6"]
    assert phq["valueInteger"] == 12 and gad["valueInteger"] == 16
    assert phq["interpretation"][0]["text"] == "moderate" and gad["interpretation"][0]["text"] == "severe"
    for obs in (phq, gad):
        assert obs["status"] == "final" and obs["code"]["coding"][0]["system"] == "http://loinc.org"
        assert obs["category"][0]["coding"][0]["code"] == "survey"
        assert obs["subject"]["reference"] == "Patient/" + patient.replace("_", ".")

    responses = await fhir(api, world.admin, f"QuestionnaireResponse?patient={patient}")
    Bundle.model_validate(responses)
    by_id = {}
    for entry in responses["entry"]:
        QuestionnaireResponse.model_validate(entry["resource"])
        by_id[entry["resource"]["id"]] = entry["resource"]
    for obs, instrument, answers in ((phq, PHQ9, phq_answers), (gad, GAD7, gad_answers)):
        response = by_id[obs["derivedFrom"][0]["reference"].split("/", 1)[1]]  # each total names its answers
        assert response["status"] == "completed"
        assert response["questionnaire"] == f"http://loinc.org/q/{instrument.loinc_panel}"
        assert [i["linkId"] for i in response["item"]] == [item.loinc for item in instrument.items]
        values = {"LA6568-5": 0, "LA6569-3": 1, "LA6570-1": 2, "LA6571-9": 3}
        assert [values[i["answer"][0]["valueCoding"]["code"]] for i in response["item"]] == \
            [answers[item.id] for item in instrument.items]

    assert await fhir(api, world.admin, f"Observation/{phq['id']}") == phq
    assert await fhir(api, world.admin, f"QuestionnaireResponse/{phq['id']}") == by_id[phq["id"]]
    await fhir(api, world.admin, "Observation/qst.nothing", 404)

    today = phq["effectiveDateTime"][:10]
    for query, count in ((f"Observation?patient={patient}&date=gt{today}", 0),
                         (f"Observation?patient={world.patients[1]['id']}", 0),
                         (f"QuestionnaireResponse?patient={patient}&date=eq{today}", 2)):
        assert len(validated_any(await fhir(api, world.admin, query))) == count, query
    for query in ("Observation", "Observation?session=ses_x", "QuestionnaireResponse?patient=a&patient=b"):
        outcome = await fhir(api, world.admin, query, 400)
        OperationOutcome.model_validate(outcome)
    await fhir(api, world.facilitator, f"Observation?patient={patient}", 403)


def validated_any(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    Bundle.model_validate(bundle)
    return [e["resource"] for e in bundle["entry"]]
