"""Groups: a recurring therapy group with its facilitators, schedule, brand and billing defaults."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from server import validation as v
from server.auth.staff import Role, get_user
from server.clock import iso, to_ms
from server.errors import bad_request, not_found
from server.ids import new_id
from server.store import keys
from server.store.connection import Redis

PROGRAMS = {"IOP": 9, "PHP": 20, "OP": 0}  # default weekly minimum hours
MAX_GROUP_NAME = 120
MAX_WELCOME = 1000
_COLOR_RE = re.compile(r"^#[0-9A-Fa-f]{6}$")
_HHMM_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_CODE_RE = re.compile(r"^[A-Za-z0-9]{4,7}$")

DEFAULT_BRAND: dict[str, str] = {
    "name": "Porchlight",
    "logo_url": "",
    "primary_color": "#2f5d8a",
    "accent_color": "#f2b134",
    "welcome_text": "Welcome. Your facilitator will let you in shortly.",
    "support_phone": "",
    # What a patient who reports thoughts of self-harm is told to call (the US's 988 Suicide & Crisis
    # Lifeline by default; a clinic elsewhere sets its own), beside the clinic's support phone.
    "crisis_line": "988",
}

CREATE_FIELDS = {"name", "program", "facilitator_ids", "timezone", "capacity", "schedule", "billing", "brand",
                 "weekly_minimum_hours", "questionnaires"}
# The questionnaires a group may ask while patients wait (server/measures/instruments.py holds them),
# and how often: every session, or at least 7 / 14 days apart (server/measures/due.py).
QUESTIONNAIRES = ("PHQ-9", "GAD-7")
CADENCE_DAYS = {"session": 0, "week": 7, "2weeks": 14}


def validate_brand(value: Any, inherit: bool = False) -> dict[str, str | None]:
    """Brand fields; with `inherit` (a change to a group's brand) a field given as null is
    dropped from the group's own brand, so the clinic's applies to it."""
    brand = v.body_object(value, set(DEFAULT_BRAND))
    out: dict[str, str | None] = {}
    limits = {"name": 100, "logo_url": 500, "welcome_text": MAX_WELCOME, "support_phone": 40,
              "primary_color": 7, "accent_color": 7, "crisis_line": 120}
    for name, limit in limits.items():
        text = v.text(brand, name, limit, required=False, min_len=0, multiline=name == "welcome_text")
        if text is None:
            if inherit and name in brand:
                out[name] = None
            continue
        if name.endswith("_color") and not _COLOR_RE.match(text):
            raise bad_request(f"brand.{name}: a colour like #2f5d8a")
        if name == "logo_url" and text and not (text.startswith("https://") or text.startswith("/")):
            raise bad_request("brand.logo_url: an https:// URL or a path on this server")
        out[name] = text
    return out


def validate_schedule(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > 21:
        raise bad_request("schedule: a list of up to 21 meeting times")
    slots = []
    for slot in value:
        item = v.body_object(slot, {"weekday", "start", "minutes"})
        weekday = v.integer(item, "weekday", 0, 6, required=True)
        start = v.required_text(item, "start", 5)
        if not _HHMM_RE.match(start):
            raise bad_request("schedule.start: HH:MM (24-hour)")
        minutes = v.integer(item, "minutes", 1, 24 * 60, required=True)
        slots.append({"weekday": weekday, "start": start, "minutes": minutes})
    return slots


def validate_billing(value: Any) -> dict[str, Any]:
    billing = v.body_object(value, {"code", "min_billable_minutes"})
    code = v.text(billing, "code", 7, required=False)
    if code is not None and not _CODE_RE.match(code):
        raise bad_request("billing.code: a service code such as 90853 or H0015")
    minimum = v.integer(billing, "min_billable_minutes", 0, 24 * 60)
    out: dict[str, Any] = {}
    if code is not None:
        out["code"] = code
    if minimum is not None:
        out["min_billable_minutes"] = minimum
    return out


def validate_questionnaires(value: Any) -> list[dict[str, str]]:
    """A group's `questionnaires`: each instrument at most once, with its cadence."""
    if not isinstance(value, list) or len(value) > len(QUESTIONNAIRES):
        raise bad_request(f"questionnaires: a list of up to {len(QUESTIONNAIRES)} {{instrument, every}}")
    out: list[dict[str, str]] = []
    for entry in value:
        item = v.body_object(entry, {"instrument", "every"})
        if item.get("instrument") not in QUESTIONNAIRES:
            raise bad_request("questionnaires.instrument: " + " or ".join(QUESTIONNAIRES))
        if item.get("every") not in CADENCE_DAYS:
            raise bad_request("questionnaires.every: session, week or 2weeks")
        if any(o["instrument"] == item["instrument"] for o in out):
            raise bad_request(f"questionnaires: {item['instrument']} is listed twice")
        out.append({"instrument": item["instrument"], "every": item["every"]})
    return out


async def _validate_facilitators(redis: Redis, ids: list[str], current: frozenset[str]) -> list[str]:
    """Staff users; a deactivated one only if already a facilitator of the group (kept, not added)."""
    for user_id in ids:
        user = await get_user(redis, user_id)
        if user is None or user.role is not Role.FACILITATOR and user.role is not Role.ADMIN:
            raise bad_request(f"facilitator_ids: {user_id} is not a staff user", code="unknown_user")
        if not user.active and user_id not in current:
            raise bad_request(f"facilitator_ids: {user_id} is deactivated", code="unknown_user")
    return ids


async def validated_fields(
    redis: Redis, body: Any, creating: bool, current: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The fields of a new group, or of a change to `current`."""
    body = v.body_object(body, CREATE_FIELDS)
    out: dict[str, Any] = {}
    if creating or "name" in body:
        out["name"] = v.required_text(body, "name", MAX_GROUP_NAME)
    if creating or "program" in body:
        program = body.get("program")
        if program not in PROGRAMS:
            raise bad_request("program: IOP, PHP or OP")
        out["program"] = program
    if creating or "facilitator_ids" in body:
        ids = body.get("facilitator_ids", [])
        if not isinstance(ids, list) or len(ids) > 50:
            raise bad_request("facilitator_ids: a list of staff user ids")
        out["facilitator_ids"] = await _validate_facilitators(
            redis, list(dict.fromkeys(v.an_id(i, "facilitator_ids") for i in ids)),
            frozenset((current or {}).get("facilitator_ids", [])),
        )
    if "timezone" in body:
        out["timezone"] = v.timezone(body["timezone"])
    if "capacity" in body:
        out["capacity"] = v.integer(body, "capacity", 1, 500, required=True)
    if "schedule" in body:
        out["schedule"] = validate_schedule(body["schedule"])
    if "billing" in body:
        out["billing"] = validate_billing(body["billing"])
    if "brand" in body:
        out["brand"] = None if body["brand"] is None and not creating else validate_brand(
            body["brand"], inherit=not creating)
    if "weekly_minimum_hours" in body:
        out["weekly_minimum_hours"] = v.integer(body, "weekly_minimum_hours", 0, 168, required=True)
    if "questionnaires" in body:
        out["questionnaires"] = validate_questionnaires(body["questionnaires"])
    return out


async def create_group(redis: Redis, fields: dict[str, Any], now: float) -> dict[str, Any]:
    group: dict[str, Any] = {
        "id": new_id("grp"),
        "timezone": "UTC",
        "capacity": 15,
        "schedule": [],
        "billing": {"code": "90853", "min_billable_minutes": 45},
        "brand": {},
        "questionnaires": [],
        "weekly_minimum_hours": PROGRAMS[fields["program"]],
        "created_at": iso(to_ms(now)),
    }
    group.update(fields)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.group(group["id"]), json.dumps(group))
        pipe.zadd(keys.groups(), {group["id"]: to_ms(now)})
        await pipe.execute()
    return group


# A loaded group carries the clinic's brand under this key (read with it, never stored with it),
# so `brand_of(group)` is the brand patients see wherever the group is at hand.
CLINIC_BRAND = "clinic_brand"


async def get_group(redis: Redis, group_id: str) -> dict[str, Any] | None:
    raw, clinic = await redis.mget([keys.group(group_id), keys.clinic_brand()])
    return {**json.loads(raw), CLINIC_BRAND: json.loads(clinic) if clinic else {}} if raw else None


async def clinic_brand(redis: Redis) -> dict[str, str]:
    """The clinic's own brand fields (those it has set; DEFAULT_BRAND fills in the rest)."""
    raw = await redis.get(keys.clinic_brand())
    return dict(json.loads(raw)) if raw else {}


async def set_clinic_brand(redis: Redis, brand: dict[str, str | None]) -> dict[str, str]:
    """Replace the clinic's brand (validated by `validate_brand`); the full brand it gives groups."""
    own = {name: value for name, value in brand.items() if value is not None}
    await redis.set(keys.clinic_brand(), json.dumps(own))
    return {**DEFAULT_BRAND, **own}


def stored(group: dict[str, Any]) -> dict[str, Any]:
    """The group as stored and as the API answers it: without the clinic brand it was read with."""
    return {k: value for k, value in group.items() if k != CLINIC_BRAND}


async def require_group(redis: Redis, group_id: str) -> dict[str, Any]:
    group = await get_group(redis, group_id)
    if group is None:
        raise not_found("group")
    return group


async def update_group(redis: Redis, group: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    if "brand" in fields:  # None: the group's own brand is cleared and the clinic's applies
        merged = {} if fields["brand"] is None else {**group.get("brand", {}), **fields["brand"]}
        fields["brand"] = {name: value for name, value in merged.items() if value is not None}
    if "billing" in fields:
        fields["billing"] = {**group.get("billing", {}), **fields["billing"]}
    updated = {**group, **fields}
    await redis.set(keys.group(group["id"]), json.dumps(stored(updated)))
    return updated


async def all_groups(redis: Redis) -> list[dict[str, Any]]:
    ids = await redis.zrange(keys.groups(), 0, -1)
    if not ids:
        return []
    *raws, clinic = await redis.mget([keys.group(i) for i in ids] + [keys.clinic_brand()])
    brand = json.loads(clinic) if clinic else {}
    return [{**json.loads(r), CLINIC_BRAND: brand} for r in raws if r]


def brand_of(group: dict[str, Any]) -> dict[str, str]:
    """What patients see: the defaults, then the clinic's brand, then the group's own fields."""
    return {**DEFAULT_BRAND, **group.get(CLINIC_BRAND, {}), **group.get("brand", {})}


def next_meeting(group: dict[str, Any], now: float) -> str | None:
    """The next scheduled start after `now`, as ISO UTC, or None without a schedule."""
    schedule = group.get("schedule") or []
    if not schedule:
        return None
    zone = ZoneInfo(group.get("timezone", "UTC"))
    local_now = datetime.fromtimestamp(now, tz=zone)
    best: datetime | None = None
    for slot in schedule:
        hour, minute = map(int, slot["start"].split(":"))
        for days_ahead in range(8):
            day = (local_now + timedelta(days=days_ahead)).date()
            if day.weekday() != slot["weekday"]:
                continue
            start = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
            if start > local_now and (best is None or start < best):
                best = start
                break
    return iso(to_ms(best.timestamp())) if best else None
