"""Patients: an opaque id, the name the group sees, an optional external MRN. Nothing more."""

from __future__ import annotations

import json
from typing import Any

from server import validation as v
from server.clock import iso, to_ms
from server.errors import not_found
from server.ids import new_id
from server.store import keys
from server.store.connection import Redis

MAX_DISPLAY_NAME = 60
MAX_EXTERNAL_ID = 64


def validated_fields(body: Any) -> dict[str, Any]:
    body = v.body_object(body, {"display_name", "external_id"})
    return {
        "display_name": v.required_text(body, "display_name", MAX_DISPLAY_NAME).strip() or "Patient",
        "external_id": v.text(body, "external_id", MAX_EXTERNAL_ID, required=False),
    }


async def create_patient(redis: Redis, fields: dict[str, Any], now: float) -> dict[str, Any]:
    patient = {"id": new_id("pat"), "created_at": iso(to_ms(now)), **fields}
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.patient(patient["id"]), json.dumps(patient))
        pipe.zadd(keys.patients(), {patient["id"]: to_ms(now)})
        await pipe.execute()
    return patient


async def get_patient(redis: Redis, patient_id: str) -> dict[str, Any] | None:
    raw = await redis.get(keys.patient(patient_id))
    return json.loads(raw) if raw else None


async def require_patient(redis: Redis, patient_id: str) -> dict[str, Any]:
    patient = await get_patient(redis, patient_id)
    if patient is None:
        raise not_found("patient")
    return patient


async def patients_by_id(redis: Redis, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    raws = await redis.mget([keys.patient(i) for i in ids])
    return {p["id"]: p for p in (json.loads(r) for r in raws if r)}


async def all_patients(redis: Redis) -> list[dict[str, Any]]:
    ids = await redis.zrange(keys.patients(), 0, -1)
    return list((await patients_by_id(redis, ids)).values())
