"""The transactional outbox: records to deliver as signed webhooks, and their delivery jobs, in Redis.

Each outbox is a channel with its own keys: "billing" (session-duration records) and "alerts"
(safety alerts, server/measures/alerts.py); a `DeliveryWorker` delivers one channel's jobs.

A record and its job are written in the same MULTI/EXEC as the attendance they come from, so
a record exists if and only if its delivery is pending, delivered or failed: never lost.
Jobs are claimed with a lease (a Lua script moves the job's due time out by the lease), so two
server processes never deliver one job at the same time, and a process killed mid-delivery
leaves a job that is due again when the lease runs out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from server.clock import iso
from server.metrics import BillingSnapshot
from server.store import keys
from server.store.connection import Redis

STATUSES = ("pending", "delivered", "failed")
BILLING = "billing"

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), id)
end
return due
"""


def queue(pipe: Any, record_id: str, body: bytes, meta: dict[str, Any], now_ms: int, channel: str = BILLING) -> None:
    """Add a record and its pending delivery to a MULTI pipeline."""
    queue_many(pipe, [(record_id, body, meta)], now_ms, channel)


def queue_many(pipe: Any, records: list[tuple[str, bytes, dict[str, Any]]], now_ms: int,
               channel: str = BILLING) -> None:
    """Add records (id, body, meta) and their pending deliveries to a MULTI pipeline, in a few
    commands for all of them (a session's finalisation queues a dozen at once)."""
    if not records:
        return
    pipe.mset({keys.outbox_record(channel, record_id): body for record_id, body, _ in records})
    for record_id, _, meta in records:
        pipe.hset(keys.outbox_delivery(channel, record_id), mapping={
            "record_id": record_id,
            "status": "pending",
            "attempts": 0,
            "created_at": now_ms,
            "meta": json.dumps(meta),
        })
    due = {record_id: now_ms for record_id, _, _ in records}
    pipe.zadd(keys.outbox_due(channel), due)
    pipe.zadd(keys.outbox_by_status(channel, "pending"), due)


async def claim(redis: Redis, now_ms: int, lease_ms: int, limit: int = 20, channel: str = BILLING) -> list[str]:
    return list(await redis.eval(_CLAIM, 1, keys.outbox_due(channel), now_ms, lease_ms, limit))


async def body_of(redis: Redis, record_id: str, channel: str = BILLING) -> bytes | None:
    raw = await redis.get(keys.outbox_record(channel, record_id))
    return None if raw is None else _as_bytes(raw)


async def records_of(redis: Redis, record_ids: list[str], channel: str = BILLING) -> dict[str, dict[str, Any]]:
    """The records' `data` (as sent) by id, in one round trip; ids without a stored body are left out."""
    if not record_ids:
        return {}
    bodies = await redis.mget([keys.outbox_record(channel, r) for r in record_ids])
    out: dict[str, dict[str, Any]] = {}
    for record_id, raw in zip(record_ids, bodies, strict=True):
        if raw is not None:
            data = json.loads(_as_bytes(raw)).get("data")
            if isinstance(data, dict):
                out[record_id] = data
    return out


@dataclass(frozen=True)
class Job:
    """A claimed delivery: the record's exact webhook body and its delivery hash."""

    record_id: str
    body: bytes | None
    delivery: dict[str, str]

    @property
    def pending(self) -> bool:
        return self.body is not None and self.delivery.get("status") == "pending"


async def jobs(redis: Redis, record_ids: list[str], channel: str = BILLING) -> list[Job]:
    """The bodies and delivery hashes of claimed records, in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for record_id in record_ids:
            pipe.get(keys.outbox_record(channel, record_id))
            pipe.hgetall(keys.outbox_delivery(channel, record_id))
        replies = await pipe.execute()
    return [Job(record_id, None if body is None else _as_bytes(body), delivery or {})
            for record_id, body, delivery in zip(record_ids, replies[::2], replies[1::2], strict=True)]


def _as_bytes(raw: str | bytes) -> bytes:
    return raw.encode() if isinstance(raw, str) else bytes(raw)


def stage_status(pipe: Any, record_id: str, status: str, now_ms: int, channel: str = BILLING,
                 **fields: Any) -> None:
    """Queue a delivery's new status on a MULTI pipeline (see `set_status`)."""
    stage_statuses(pipe, [Change(record_id, status, now_ms, fields)], channel)


@dataclass(frozen=True)
class Change:
    """A delivery's new status, when it changed, and the fields of its delivery hash to set."""

    record_id: str
    status: str
    at_ms: int
    fields: dict[str, Any]


def stage_statuses(pipe: Any, changes: list[Change], channel: str = BILLING) -> None:
    """Queue deliveries' new statuses on a MULTI pipeline: the status indexes and the due set
    take one command per status for all of them, each delivery hash its own."""
    by_status: dict[str, list[Change]] = {}
    for change in changes:
        by_status.setdefault(change.status, []).append(change)
        pipe.hset(keys.outbox_delivery(channel, change.record_id), mapping={"status": change.status, **change.fields})
    for status, group in by_status.items():
        ids = [change.record_id for change in group]
        for other in STATUSES:
            if other != status:
                pipe.zrem(keys.outbox_by_status(channel, other), *ids)
        # A record that stays pending keeps its score (when it became pending), so the oldest
        # pending record's age (in /metrics) grows across its retries.
        pipe.zadd(keys.outbox_by_status(channel, status), {c.record_id: c.at_ms for c in group},
                  nx=status == "pending")
        if status == "pending":
            pipe.zadd(keys.outbox_due(channel),
                      {c.record_id: int(c.fields.get("next_attempt_at", c.at_ms)) for c in group})
        else:
            pipe.zrem(keys.outbox_due(channel), *ids)


async def set_status(redis: Redis, record_id: str, status: str, now_ms: int, channel: str = BILLING,
                     **fields: Any) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        stage_status(pipe, record_id, status, now_ms, channel, **fields)
        await pipe.execute()


def forget(pipe: Any, record_id: str, channel: str = BILLING) -> None:
    """Remove a record and its delivery from every index (retention purge, inside a transaction)."""
    pipe.delete(keys.outbox_record(channel, record_id), keys.outbox_delivery(channel, record_id))
    for status in STATUSES:
        pipe.zrem(keys.outbox_by_status(channel, status), record_id)
    pipe.zrem(keys.outbox_due(channel), record_id)


async def backlog(redis: Redis, now_ms: int) -> BillingSnapshot:
    """Records pending, failed and delivered, and the oldest pending one's age in seconds (0 when none)."""
    async with redis.pipeline(transaction=False) as pipe:
        for status in ("pending", "failed", "delivered"):
            pipe.zcard(keys.billing_by_status(status))
        pipe.zrange(keys.billing_by_status("pending"), 0, 0, withscores=True)
        pending, failed, delivered, oldest = await pipe.execute()
    age = max(0.0, (now_ms - float(oldest[0][1])) / 1000) if oldest else 0.0
    return BillingSnapshot(int(pending), int(failed), age, int(delivered))


def describe(delivery: dict[str, str]) -> dict[str, Any]:
    meta = json.loads(delivery.get("meta") or "{}")

    def when(name: str) -> str | None:
        value = delivery.get(name)
        return iso(int(value)) if value else None

    return {
        "id": delivery["record_id"],
        "record_id": delivery["record_id"],
        "status": delivery["status"],
        "attempts": int(delivery.get("attempts", 0)),
        "last_status": int(delivery["last_status"]) if delivery.get("last_status") else None,
        "last_error": delivery.get("last_error") or None,
        "created_at": when("created_at"),
        "last_attempt_at": when("last_attempt_at"),
        "next_attempt_at": when("next_attempt_at") if delivery["status"] == "pending" else None,
        "delivered_at": when("delivered_at"),
        **meta,
    }


async def deliveries(redis: Redis, status: str | None, limit: int = 1000,
                     channel: str = BILLING) -> list[dict[str, Any]]:
    ids: list[str] = []
    for name in [status] if status else list(STATUSES):
        ids += await redis.zrevrange(keys.outbox_by_status(channel, name), 0, limit - 1)
    out = []
    for record_id in ids[:limit]:
        delivery = await redis.hgetall(keys.outbox_delivery(channel, record_id))
        if delivery:
            out.append(describe(delivery))
    out.sort(key=lambda d: d["created_at"] or "", reverse=True)
    return out
