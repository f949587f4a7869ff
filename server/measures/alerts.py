"""Safety alerts: a PHQ-9 item 9 answer above 0, raised at once, kept until acknowledged.

An alert is stored (a hash under `keys.alert`), indexed by group, audited, and queued as a signed
`safety_alert.raised` event in the "alerts" outbox, all in the transaction that stores the
answer: an answer is never kept without its alert, nor an alert without its event. The event is
delivered to PORCHLIGHT_ALERT_WEBHOOK_URL by the billing outbox's worker (`DeliveryWorker` with
the alerts `Endpoint`): same signing, retries, dead letter and crash recovery.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from server.billing import outbox
from server.billing.delivery import Endpoint
from server.clock import iso
from server.errors import ApiError, ErrorCode, not_found
from server.ids import new_id
from server.settings import Settings
from server.store import keys
from server.store.connection import Redis

CHANNEL = "alerts"
STATUSES = ("open", "acknowledged")
MAX_NOTE = 500

_ACKNOWLEDGE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'open' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'acknowledged', 'acknowledged_by', ARGV[1], 'acknowledged_at', ARGV[2],
           'note', ARGV[3])
return 1
"""


def endpoint(settings: Settings) -> Endpoint:
    return Endpoint(CHANNEL, settings.alert_webhook_url, settings.alert_signing_secrets, "safety_alert")


@dataclass(frozen=True)
class Alert:
    id: str
    patient_id: str
    group_id: str
    session_id: str | None
    measure_id: str
    instrument: str
    item: str  # the item id ("9")
    value: int
    at_ms: int
    status: str = "open"
    acknowledged_by: str | None = None
    acknowledged_at: int | None = None
    note: str | None = None

    def public(self, display_name: str) -> dict[str, Any]:
        """As the `safety_alert` frame and GET /alerts show it."""
        out: dict[str, Any] = {
            "id": self.id, "patient_id": self.patient_id, "display_name": display_name,
            "session_id": self.session_id, "group_id": self.group_id, "instrument": self.instrument,
            "item": self.item, "value": self.value, "at": iso(self.at_ms), "status": self.status,
        }
        if self.status == "acknowledged":
            out.update(acknowledged_by=self.acknowledged_by, acknowledged_at=iso(self.acknowledged_at),
                       note=self.note or None)
        return out

    def stored(self) -> dict[str, str]:
        return {name: "" if value is None else str(value) for name, value in self.__dict__.items()}

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Alert:
        def text(name: str) -> str | None:
            return raw.get(name) or None

        return cls(
            id=raw["id"], patient_id=raw["patient_id"], group_id=raw["group_id"], session_id=text("session_id"),
            measure_id=raw["measure_id"], instrument=raw["instrument"], item=raw["item"], value=int(raw["value"]),
            at_ms=int(raw["at_ms"]), status=raw.get("status", "open"), acknowledged_by=text("acknowledged_by"),
            acknowledged_at=int(raw["acknowledged_at"]) if raw.get("acknowledged_at") else None,
            note=text("note"),
        )


def new_alert(patient_id: str, group_id: str, session_id: str | None, measure_id: str, instrument: str,
              item: str, value: int, now_ms: int) -> Alert:
    return Alert(new_id("alt"), patient_id, group_id, session_id, measure_id, instrument, item, value, now_ms)


def event_body(alert: Alert, external_patient_id: str | None) -> bytes:
    """The signed event's body: ids and the answer that raised it (never a name or a score)."""
    data = {"alert_id": alert.id, "patient_id": alert.patient_id, "external_patient_id": external_patient_id,
            "group_id": alert.group_id, "session_id": alert.session_id, "instrument": alert.instrument,
            "item": alert.item, "value": alert.value, "at": iso(alert.at_ms)}
    body = {"type": "safety_alert.raised", "timestamp": iso(alert.at_ms), "data": data}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def write(pipe: Any, alert: Alert, body: bytes) -> None:
    """The alert, its index entries and its outgoing event (inside the caller's transaction)."""
    pipe.hset(keys.alert(alert.id), mapping=alert.stored())
    pipe.zadd(keys.group_alerts(alert.group_id), {alert.id: alert.at_ms})
    pipe.zadd(keys.alerts_by_time(), {alert.id: alert.at_ms})
    outbox.queue(pipe, alert.id, body, {"alert_id": alert.id, "group_id": alert.group_id}, alert.at_ms, CHANNEL)


async def get(redis: Redis, alert_id: str) -> Alert | None:
    raw = await redis.hgetall(keys.alert(alert_id))
    return Alert.from_hash(raw) if raw else None


async def require(redis: Redis, alert_id: str) -> Alert:
    found = await get(redis, alert_id)
    if found is None:
        raise not_found("alert")
    return found


async def of_groups(redis: Redis, group_ids: list[str], status: str | None, limit: int = 500) -> list[Alert]:
    """The groups' alerts, newest first, optionally of one status."""
    ids: list[str] = []
    for group_id in group_ids:
        ids += await redis.zrevrange(keys.group_alerts(group_id), 0, limit - 1)
    async with redis.pipeline(transaction=False) as pipe:
        for alert_id in ids:
            pipe.hgetall(keys.alert(alert_id))
        raws = await pipe.execute() if ids else []
    found = [Alert.from_hash(raw) for raw in raws if raw]
    if status is not None:
        found = [a for a in found if a.status == status]
    return sorted(found, key=lambda a: (-a.at_ms, a.id))[:limit]


async def acknowledge(redis: Redis, alert: Alert, user_id: str, note: str | None, now_ms: int) -> Alert:
    """Who acknowledged it and when; 409 `already_acknowledged` the second time."""
    done = await redis.eval(_ACKNOWLEDGE, 1, keys.alert(alert.id), user_id, now_ms, note or "")
    if not done:
        raise ApiError(409, ErrorCode.ALREADY_ACKNOWLEDGED, "this alert has already been acknowledged")
    return await require(redis, alert.id)


# -- export and retention ----------------------------------------------------------------


async def between(redis: Redis, low_ms: int, high_ms: int) -> list[Alert]:
    ids = await redis.zrangebyscore(keys.alerts_by_time(), low_ms, f"({high_ms}")
    return [a for a in [await get(redis, i) for i in ids] if a is not None]


def forget(pipe: Any, alert: Alert) -> None:
    pipe.delete(keys.alert(alert.id))
    pipe.zrem(keys.group_alerts(alert.group_id), alert.id)
    pipe.zrem(keys.alerts_by_time(), alert.id)
    outbox.forget(pipe, alert.id, CHANNEL)
