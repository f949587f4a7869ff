"""Observations (the totals) and QuestionnaireResponses (the answers) from the measures store
(server/measures/store.py, its read API): one of each per answered PHQ-9 or GAD-7."""

from __future__ import annotations

from typing import Any

from server.fhir import resources
from server.fhir.search import DateRange
from server.measures import store
from server.measures.instruments import INSTRUMENTS, OPTIONS
from server.store.connection import Redis


async def _answered(redis: Redis, patient_id: str, dates: DateRange) -> list[store.Measure]:
    """The patient's answered questionnaires whose day (UTC) is within `dates`, oldest first."""
    return [m for m in await store.measures_of(redis, patient_id) if m.at[:10] in dates]


async def observations(redis: Redis, patient_id: str, dates: DateRange) -> list[dict[str, Any]]:
    return [resources.observation(m, INSTRUMENTS[m.instrument]) for m in await _answered(redis, patient_id, dates)]


async def questionnaire_responses(redis: Redis, patient_id: str, dates: DateRange) -> list[dict[str, Any]]:
    return [resources.questionnaire_response(m, INSTRUMENTS[m.instrument], OPTIONS)
            for m in await _answered(redis, patient_id, dates)]


async def read(redis: Redis, kind: str, fhir_id: str) -> dict[str, Any] | None:
    """One answered questionnaire as an Observation or a QuestionnaireResponse (they share its id)."""
    questionnaire = await store.get(redis, resources.porchlight_id(fhir_id))
    measure = questionnaire.measure if questionnaire else None
    if measure is None:
        return None
    instrument = INSTRUMENTS[measure.instrument]
    if kind == "Observation":
        return resources.observation(measure, instrument)
    return resources.questionnaire_response(measure, instrument, OPTIONS)
