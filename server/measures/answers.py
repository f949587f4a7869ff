"""A patient answers or skips a questionnaire: checked, scored, stored, and a safety alert raised.

Answers are checked whole before anything is written (a missing, unknown or out-of-range answer
is `bad_request` and stores nothing). The answer, its alert, the alert's audit entry and its
outgoing event are one transaction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from server.audit import Action, AuditLog
from server.clinic.patients import get_patient
from server.errors import ApiError, ErrorCode, bad_request
from server.measures import alerts, store
from server.measures.instruments import INSTRUMENTS, SAFETY_ITEM, BadAnswers, checked_answers, raises_alert, score
from server.store.connection import Redis


@dataclass(frozen=True)
class Saved:
    questionnaire: store.Questionnaire
    alert: alerts.Alert | None = None


async def _open(redis: Redis, questionnaire_id: Any, patient_id: str) -> store.Questionnaire:
    if not isinstance(questionnaire_id, str) or not questionnaire_id:
        raise bad_request("id: the questionnaire's id")
    found = await store.get(redis, questionnaire_id[:64])
    if found is None or found.patient_id != patient_id:
        raise ApiError(404, ErrorCode.NOT_FOUND, "no such questionnaire")
    if found.status != "open":
        raise ApiError(409, ErrorCode.ALREADY_ANSWERED, f"this questionnaire was already {found.status}")
    return found


async def _claimed(redis: Redis, questionnaire: store.Questionnaire) -> None:
    if not await store.claim(redis, questionnaire):
        raise ApiError(409, ErrorCode.ALREADY_ANSWERED, "this questionnaire was already answered, or has expired")


async def answer(redis: Redis, audit: AuditLog, questionnaire_id: Any, patient_id: str, answers: Any,
                 session_id: str | None, now_ms: int) -> Saved:
    questionnaire = await _open(redis, questionnaire_id, patient_id)
    instrument = INSTRUMENTS[questionnaire.instrument]
    try:
        checked = checked_answers(instrument, answers)
    except BadAnswers as exc:
        raise bad_request(str(exc)) from None
    total = score(instrument, checked)
    answered = dataclasses.replace(questionnaire, status="answered", closed_at=now_ms, session_id=session_id,
                                   answers=checked, score=total, band=instrument.band(total))
    alert: alerts.Alert | None = None
    actions: list[Action] = []
    body = b""
    if raises_alert(instrument, checked):
        item = SAFETY_ITEM[1]
        alert = alerts.new_alert(patient_id, questionnaire.group_id, session_id, questionnaire.id, instrument.name,
                                 item, checked[item], now_ms)
        patient = await get_patient(redis, patient_id)
        body = alerts.event_body(alert, patient.get("external_id") if patient else None)
        # Ids only: the audit log is never purged, so it holds no answers and no scores.
        actions.append(Action("safety_alert.raise", f"patient:{patient_id}", {
            "alert_id": alert.id, "patient_id": patient_id, "group_id": alert.group_id,
            "session_id": session_id, "measure_id": questionnaire.id}))
    await _claimed(redis, questionnaire)

    def write(pipe: Any) -> None:
        store.write_closed(pipe, answered)
        if alert is not None:
            alerts.write(pipe, alert, body)

    try:
        await audit.commit_with(actions, write)
    except BaseException:
        await store.release(redis, questionnaire)  # nothing was stored: the patient may send it again
        raise
    return Saved(answered, alert)


async def skip(redis: Redis, questionnaire_id: Any, patient_id: str, session_id: str | None,
               now_ms: int) -> store.Questionnaire:
    questionnaire = await _open(redis, questionnaire_id, patient_id)
    await _claimed(redis, questionnaire)
    skipped = dataclasses.replace(questionnaire, status="skipped", closed_at=now_ms, session_id=session_id)
    try:
        async with redis.pipeline(transaction=True) as pipe:
            store.write_closed(pipe, skipped)
            await pipe.execute()
    except BaseException:
        await store.release(redis, questionnaire)
        raise
    return skipped
