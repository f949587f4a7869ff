"""FHIR R4 resources built from Porchlight's records. Pure: no I/O.

Ids: Porchlight's ids may hold `_`, which a FHIR id may not ([A-Za-z0-9-.]{1,64}), so a FHIR id
is the Porchlight id with `_` written as `.` (no Porchlight id holds a `.`, so nothing is lost):
`pat_Ab3` is `Patient/pat.Ab3`. Search parameters take either spelling.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from server.measures.instruments import Instrument, Option
from server.measures.store import Measure

FHIR_JSON = "application/fhir+json"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
NPI = "http://hl7.org/fhir/sid/us-npi"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "urn:oid:2.16.840.1.113883.6.285"  # HCPCS Level II (H0015, S9480...), as US Core names it
UCUM = "http://unitsofmeasure.org"
MINUTES = "min"  # UCUM's code for minutes


def fhir_id(porchlight_id: str) -> str:
    return porchlight_id.replace("_", ".")


def porchlight_id(fhir: str) -> str:
    return fhir.replace(".", "_")


def identifier_system(public_url: str, kind: str) -> str:
    """Where this deployment's own identifiers live: {public URL}/fhir/sid/{patient|mrn|session...}."""
    return f"{public_url}/fhir/sid/{kind}"


def code_system(code: str) -> str:
    """CPT for five digits (90853), HCPCS Level II for a letter and four digits (H0015)."""
    return HCPCS if code[:1].isalpha() else CPT


def encounter(record: dict[str, Any], *, group: dict[str, Any], patient: dict[str, Any] | None,
              facilitator: dict[str, Any], public_url: str) -> dict[str, Any]:
    """One patient's attendance of one session (status attended) as a finished virtual Encounter.

    period: first join to last leave; length: the attended minutes (the union of presence, not the
    span of the period); type and serviceType: the group's billing code; participant: the
    facilitator who ran it, with their NPI."""
    code = str((group.get("billing") or {}).get("code", "90853"))
    service = {"coding": [{"system": code_system(code), "code": code}], "text": code}
    subject: dict[str, Any] = {"reference": f"Patient/{fhir_id(record['patient_id'])}"}
    if patient and patient.get("external_id"):
        subject["identifier"] = {"system": identifier_system(public_url, "mrn"), "value": patient["external_id"]}
    individual: dict[str, Any] = {}
    if facilitator.get("id"):
        individual["reference"] = f"Practitioner/{fhir_id(facilitator['id'])}"
    if facilitator.get("npi"):
        individual["identifier"] = {"system": NPI, "value": facilitator["npi"]}
    if facilitator.get("name"):
        individual["display"] = facilitator["name"]
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": f"{fhir_id(record['session_id'])}-{fhir_id(record['patient_id'])}",
        "identifier": [{"system": identifier_system(public_url, "attendance"),
                        "value": f"{record['session_id']}:{record['patient_id']}"}],
        "status": "finished",
        "class": {"system": ACT_CODE, "code": "VR", "display": "virtual"},
        "type": [service],
        "serviceType": service,
        "subject": subject,
        "period": {"start": record["first_join"], "end": record["last_leave"]},
        "length": {"value": record["attended_minutes"], "unit": MINUTES, "system": UCUM, "code": MINUTES},
    }
    if individual:
        resource["participant"] = [{
            "type": [{"coding": [{"system": PARTICIPATION, "code": "PPRF", "display": "primary performer"}]}],
            "individual": individual,
        }]
    return resource


def searchset(resources: list[dict[str, Any]], self_url: str, base: str) -> dict[str, Any]:
    """A search result: Bundle type searchset, every entry a match with its absolute fullUrl."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": self_url}],
        "entry": [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                  for r in resources],
    }


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    """An error as FHIR clients read it. `code` is FHIR's issue type (invalid, not-supported,
    security, not-found, exception...); diagnostics says what was wrong, in words."""
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]}


# -- the measures: PHQ-9 and GAD-7 totals and their answers ------------------------------------------

LOINC = "http://loinc.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
SURVEY_CODE = "survey"
SURVEY = {"system": OBSERVATION_CATEGORY, "code": SURVEY_CODE, "display": "Survey"}
TOTAL_DISPLAY = {  # LOINC's names of the totals
    "44261-6": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
    "70274-6": "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]",
}


def questionnaire_response(measure: Measure, instrument: Instrument, options: Iterable[Option]) -> dict[str, Any]:
    """An answered PHQ-9 or GAD-7: each item (linkId its LOINC code) with its LOINC answer."""
    answer_of = {option.value: option for option in options}
    items = []
    for item in instrument.items:
        option = answer_of[measure.answers[item.id]]
        items.append({"linkId": item.loinc, "text": item.text,
                      "answer": [{"valueCoding": {"system": LOINC, "code": option.loinc, "display": option.label}}]})
    return {
        "resourceType": "QuestionnaireResponse",
        "id": fhir_id(measure.id),
        "identifier": {"system": "urn:porchlight:measure", "value": measure.id},
        "questionnaire": f"{LOINC}/q/{instrument.loinc_panel}",  # LOINC's form of the instrument
        "status": "completed",
        "subject": {"reference": f"Patient/{fhir_id(measure.patient_id)}"},
        "authored": measure.at,
        "item": items,
    }


def observation(measure: Measure, instrument: Instrument) -> dict[str, Any]:
    """A PHQ-9 or GAD-7 total score, derived from its QuestionnaireResponse, with the band."""
    return {
        "resourceType": "Observation",
        "id": fhir_id(measure.id),
        "status": "final",
        "category": [{"coding": [SURVEY]}],
        "code": {"coding": [{"system": LOINC, "code": instrument.loinc_total,
                             "display": TOTAL_DISPLAY.get(instrument.loinc_total, instrument.title)}],
                 "text": f"{instrument.name} total score"},
        "subject": {"reference": f"Patient/{fhir_id(measure.patient_id)}"},
        "effectiveDateTime": measure.at,
        "issued": measure.at,
        "valueInteger": measure.score,
        "interpretation": [{"text": measure.band}],
        "derivedFrom": [{"reference": f"QuestionnaireResponse/{fhir_id(measure.id)}"}],
    }
