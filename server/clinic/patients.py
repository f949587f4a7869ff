"""Patients: an opaque id, the name the group sees, an optional external MRN, and, for
reminders, an optional email address and whether they want reminders. Nothing more."""

from __future__ import annotations

import json
import re
from typing import Any

from redis.exceptions import WatchError

from server import validation as v
from server.clock import iso, to_ms
from server.errors import bad_request, not_found
from server.ids import new_id
from server.store import keys
from server.store.connection import Redis

MAX_DISPLAY_NAME = 60
MAX_EXTERNAL_ID = 64
MAX_EMAIL = 254  # RFC 5321's limit on a forward path, less the angle brackets
FIELDS = {"display_name", "external_id", "email", "reminders"}
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")  # a dot-atom
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def email_address(value: str) -> str:
    """A deliverable-looking address (RFC 5321 mailbox, dot-atom local part, a domain of at least two
    labels; an internationalised domain is stored as IDNA), with the domain lower-cased; else 400.
    Quoted local parts and address literals are refused: no clinic's patient needs them."""
    local, at, domain = value.strip().rpartition("@")
    if not at or not local or len(local) > 64 or not _LOCAL.match(local):
        raise bad_request("email: an address like name@example.org")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise bad_request("email: the domain is not a valid host name") from None
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels) \
            or labels[-1].isdigit():
        raise bad_request("email: the domain is not a valid host name")
    address = f"{local}@{ascii_domain}"
    if len(address) > MAX_EMAIL:
        raise bad_request(f"email: at most {MAX_EMAIL} characters")
    return address


def validated_fields(body: Any, creating: bool = True) -> dict[str, Any]:
    """The fields of a new patient, or (creating=False) only those a change names; `null`
    clears an external id or an email address."""
    body = v.body_object(body, FIELDS)
    fields: dict[str, Any] = {}
    if creating or "display_name" in body:
        fields["display_name"] = v.required_text(body, "display_name", MAX_DISPLAY_NAME).strip() or "Patient"
    if creating or "external_id" in body:
        fields["external_id"] = v.text(body, "external_id", MAX_EXTERNAL_ID, required=False)
    if creating or "email" in body:
        raw = v.text(body, "email", MAX_EMAIL, required=False)
        fields["email"] = email_address(raw) if raw is not None else None
    if creating or "reminders" in body:
        fields["reminders"] = bool(v.boolean(body, "reminders"))
    if not fields:
        raise bad_request(f"name a field to change: {', '.join(sorted(FIELDS))}")
    return fields


async def create_patient(redis: Redis, fields: dict[str, Any], now: float) -> dict[str, Any]:
    patient = {"id": new_id("pat"), "created_at": iso(to_ms(now)), **fields}
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.patient(patient["id"]), json.dumps(patient))
        pipe.zadd(keys.patients(), {patient["id"]: to_ms(now)})
        await pipe.execute()
    return patient


async def update_patient(redis: Redis, patient_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Change some fields; a concurrent change to the same patient is retried, never lost."""
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(keys.patient(patient_id))
                raw = await pipe.get(keys.patient(patient_id))
                if raw is None:
                    raise not_found("patient")
                patient = {**json.loads(raw), **fields}
                pipe.multi()
                pipe.set(keys.patient(patient_id), json.dumps(patient))
                await pipe.execute()
                return patient
            except WatchError:
                continue


def public(patient: dict[str, Any]) -> dict[str, Any]:
    """A patient as the API shows it: older records lack the reminder fields."""
    return {"email": None, "reminders": False, **patient}


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
