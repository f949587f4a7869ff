"""`reminder.due` events for a clinic's own SMS (or other) system: signed Standard Webhooks sent
through the transactional outbox (channel "reminders"), retried and kept exactly like billing's
(server/billing/outbox.py and delivery.py), to PORCHLIGHT_NOTIFY_WEBHOOK_URL."""

from __future__ import annotations

import json
from typing import Any

from server.billing.delivery import Endpoint
from server.clock import iso, to_ms
from server.settings import Settings

CHANNEL = "reminders"
EVENT_TYPE = "reminder.due"


def endpoint(settings: Settings) -> Endpoint:
    return Endpoint(CHANNEL, settings.notify_webhook_url, settings.notify_webhook_secrets, "reminder")


def event_body(*, event_id: str, group: dict[str, Any], patient: dict[str, Any], meeting_start: float,
               meeting_local: str, minutes_before: int, join_url: str, now: float) -> bytes:
    """What the clinic's system needs to send its own reminder: whom (ids, the MRN), which meeting,
    the patient's join link. Not the patient's name or email: the clinic's system has its own record."""
    data = {
        "reminder_id": event_id,
        "patient_id": patient["id"],
        "external_patient_id": patient.get("external_id"),
        "group_id": group["id"],
        "group_name": group.get("name"),
        "meeting_start": iso(to_ms(meeting_start)),
        "meeting_local": meeting_local,
        "timezone": group.get("timezone") or "UTC",
        "minutes_before": minutes_before,
        "join_url": join_url,
        "calendar_url": f"{join_url}/calendar.ics",
    }
    body = {"type": EVENT_TYPE, "timestamp": iso(to_ms(now)), "data": data}
    return json.dumps(body, separators=(",", ":")).encode()
