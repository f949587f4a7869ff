"""Enrolments: a patient in a group, with dates. Each owns the patient's join link."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from server import validation as v
from server.auth.links import LinkSigner
from server.clock import iso, to_ms
from server.errors import bad_request, conflict, not_found
from server.ids import new_id
from server.store import keys
from server.store.connection import Redis


def validated_fields(body: Any) -> dict[str, Any]:
    body = v.body_object(body, {"patient_id", "starts_on", "ends_on"})
    starts_on = v.iso_date(body, "starts_on")
    ends_on = v.iso_date(body, "ends_on")
    if starts_on and ends_on and ends_on < starts_on:
        raise bad_request("ends_on: must not be before starts_on")
    return {
        "patient_id": v.an_id(body.get("patient_id"), "patient_id"),
        "starts_on": starts_on.isoformat() if starts_on else None,
        "ends_on": ends_on.isoformat() if ends_on else None,
    }


def public(enrollment: dict[str, Any], links: LinkSigner) -> dict[str, Any]:
    out = {k: enrollment[k] for k in ("id", "patient_id", "group_id", "starts_on", "ends_on", "created_at", "ended_at")}
    out["active"] = enrollment.get("ended_at") is None
    if out["active"]:
        out["join_url"] = links.url(enrollment["id"], enrollment["link_version"])
    return out


async def create_enrollment(redis: Redis, group_id: str, fields: dict[str, Any], now: float) -> dict[str, Any]:
    enrollment = {
        "id": new_id("enr"), "group_id": group_id, "link_version": 1,
        "created_at": iso(to_ms(now)), "ended_at": None, **fields,
    }
    # One active enrolment per patient per group: HSETNX claims the place atomically.
    active = keys.group_active_enrollments(group_id)
    if not await redis.hsetnx(active, fields["patient_id"], enrollment["id"]):
        raise conflict("already_enrolled", "the patient already has an active enrolment in this group",
                       enrollment_id=await redis.hget(active, fields["patient_id"]))
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.enrollment(enrollment["id"]), json.dumps(enrollment))
        pipe.zadd(keys.group_enrollments(group_id), {enrollment["id"]: to_ms(now)})
        await pipe.execute()
    return enrollment


async def get_enrollment(redis: Redis, enrollment_id: str) -> dict[str, Any] | None:
    raw = await redis.get(keys.enrollment(enrollment_id))
    return json.loads(raw) if raw else None


async def require_enrollment(redis: Redis, enrollment_id: str) -> dict[str, Any]:
    enrollment = await get_enrollment(redis, enrollment_id)
    if enrollment is None:
        raise not_found("enrollment")
    return enrollment


async def group_enrollments(redis: Redis, group_id: str) -> list[dict[str, Any]]:
    ids = await redis.zrange(keys.group_enrollments(group_id), 0, -1)
    if not ids:
        return []
    raws = await redis.mget([keys.enrollment(i) for i in ids])
    return [json.loads(r) for r in raws if r]


async def _save_with(redis: Redis, enrollment_id: str, change: dict[str, Any]) -> dict[str, Any]:
    # A Lua read-modify-write: a concurrent rotation or end cannot be lost.
    raw = await redis.eval(_MERGE, 1, keys.enrollment(enrollment_id), json.dumps(change))
    if raw is None:
        raise not_found("enrollment")
    return dict(json.loads(raw))


async def rotate_link(redis: Redis, enrollment: dict[str, Any]) -> dict[str, Any]:
    if enrollment.get("ended_at") is not None:
        raise conflict("enrollment_ended", "the enrolment has ended")
    return await _save_with(redis, enrollment["id"], {"__bump__": "link_version"})


async def end_enrollment(redis: Redis, enrollment: dict[str, Any], now: float) -> dict[str, Any]:
    if enrollment.get("ended_at") is not None:
        raise conflict("enrollment_ended", "the enrolment has already ended")
    ended = await _save_with(redis, enrollment["id"], {"ended_at": iso(to_ms(now))})
    await redis.hdel(keys.group_active_enrollments(enrollment["group_id"]), enrollment["patient_id"])
    return ended


def usable(enrollment: dict[str, Any], group: dict[str, Any], version: int, now: float) -> bool:
    """Whether a link of `version` lets the patient in at `now`."""
    if enrollment.get("ended_at") is not None or enrollment["link_version"] != version:
        return False
    zone = ZoneInfo(group.get("timezone", "UTC"))
    today = datetime.fromtimestamp(now, tz=zone).date()
    if enrollment.get("ends_on") and today > date.fromisoformat(enrollment["ends_on"]):
        return False
    # A link works from the day before the start, so a first-day patient can test devices.
    if enrollment.get("starts_on") and today < date.fromisoformat(enrollment["starts_on"]) - timedelta(days=1):
        return False
    return True


_MERGE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return nil end
local doc = cjson.decode(raw)
local change = cjson.decode(ARGV[1])
for k, v in pairs(change) do
  if k == '__bump__' then doc[v] = doc[v] + 1 else doc[k] = v end
end
local out = cjson.encode(doc)
redis.call('SET', KEYS[1], out)
return out
"""
