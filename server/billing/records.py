"""Building a session-duration billing record from an attendance record. Pure: no I/O.

A record carries facts (times, seconds, place, modality) and suggestions (code, units,
modifiers) that follow the group's billing rule and name it; the biller decides.

Rules applied:
- place_of_service: "10" (telehealth in the patient's home) when the patient checked in from
  home, else "02" (telehealth provided other than in the patient's home).
- modality: "audio_only" when all media time was audio only, "mixed" when there was both
  video and audio-only time, else "video" (including presence with no media reported:
  the session itself is a video session).
- below_minimum: attended_minutes < the group's min_billable_minutes, or the attendance record is
  a `short_join` (attended for less than PORCHLIGHT_MIN_ATTENDED_SECONDS, 60 by default); such a
  record is still sent (the biller sees the attendance) with suggested units 0.
- suggested units: 1 per session at or above the minimum (group psychotherapy 90853 and
  per-diem codes such as H0015 or S9480 are billed once per session/day).
- suggested modifiers: "95" (synchronous audio-video telehealth) for video or mixed,
  "93" (audio-only) for audio only; none when below the minimum.
"""

from __future__ import annotations

import json
from typing import Any

EVENT_TYPE = "session_duration.recorded"


def modality(video_seconds: int, audio_only_seconds: int) -> str:
    if audio_only_seconds > 0 and video_seconds == 0:
        return "audio_only"
    if audio_only_seconds > 0 and video_seconds > 0:
        return "mixed"
    return "video"


def suggestion(
    billing: dict[str, Any], attended_minutes: int, kind: str, short: bool = False
) -> tuple[dict[str, Any], bool]:
    code = str(billing.get("code", "90853"))
    minimum = int(billing.get("min_billable_minutes", 0))
    below = attended_minutes < minimum or short
    modifiers = [] if below else (["93"] if kind == "audio_only" else ["95"])
    rule = f"{code}: 1 unit per session at {minimum}+ attended minutes; 95 video, 93 audio-only"
    if short:
        rule += "; a join shorter than the clinic's minimum attended time is below minimum"
    return {"code": code, "units": 0 if below else 1, "modifiers": modifiers, "rule": rule}, below


def build(
    *,
    record_id: str,
    supersedes: str | None,
    attendance: dict[str, Any],
    session: dict[str, Any],
    group: dict[str, Any],
    patient: dict[str, Any],
    facilitator: dict[str, Any],
    participants_present: int,
    created_at: str,
) -> dict[str, Any]:
    kind = modality(attendance["video_seconds"], attendance["audio_only_seconds"])
    suggested, below = suggestion(group.get("billing", {}), attendance["attended_minutes"], kind,
                                  bool(attendance.get("short_join")))
    data = {
        "record_id": record_id,
        "supersedes": supersedes,
        "session_id": attendance["session_id"],
        "group_id": attendance["group_id"],
        "program": group["program"],
        "patient_id": attendance["patient_id"],
        "external_patient_id": patient.get("external_id"),
        "service_date": attendance["service_date"],
        "session_started_at": session["started_at"],
        "session_ended_at": session["ended_at"],
        "first_join": attendance["first_join"],
        "last_leave": attendance["last_leave"],
        "intervals": attendance["intervals"],
        "attended_seconds": attendance["attended_seconds"],
        "attended_minutes": attendance["attended_minutes"],
        "session_seconds": session["session_seconds"],
        "waited_seconds": attendance["waited_seconds"],
        "place_of_service": "10" if attendance.get("location") == "home" else "02",
        "modality": kind,
        "video_seconds": attendance["video_seconds"],
        "audio_only_seconds": attendance["audio_only_seconds"],
        "below_minimum": below,
        "facilitator": {"id": facilitator.get("id"), "npi": facilitator.get("npi")},
        "participants_present": participants_present,
        "suggested": suggested,
    }
    return {"type": EVENT_TYPE, "timestamp": created_at, "data": data}


def body_bytes(record: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent, every attempt."""
    return json.dumps(record, separators=(",", ":"), sort_keys=False).encode()
