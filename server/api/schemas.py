"""The API's schemas for the OpenAPI document (server/api/openapi.py): request bodies as the
validators accept them (server/validation.py, server/clinic/*), and the resources it answers
with."""

from __future__ import annotations

from typing import Any

from server.errors import CODES, http_codes, websocket_codes

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str], closed: bool = False, **props: Any) -> Schema:
    """An object schema; `closed` (request bodies) refuses unknown fields as the validators do."""
    schema: Schema = {"type": "object", "required": required, "properties": props}
    if closed:
        schema["additionalProperties"] = False
    return schema


def array(items: Schema, max_items: int | None = None, min_items: int | None = None) -> Schema:
    schema: Schema = {"type": "array", "items": items}
    if max_items is not None:
        schema["maxItems"] = max_items
    if min_items is not None:
        schema["minItems"] = min_items
    return schema


def text(max_len: int, min_len: int = 1, **extra: Any) -> Schema:
    return {"type": "string", "minLength": min_len, "maxLength": max_len, **extra}


def integer(low: int, high: int) -> Schema:
    return {"type": "integer", "minimum": low, "maximum": high}


S: Schema = {"type": "string"}
NULLABLE_S: Schema = {"type": ["string", "null"]}
BOOL: Schema = {"type": "boolean"}
INT: Schema = {"type": "integer"}
ID: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
DATE: Schema = {"type": "string", "format": "date"}
TIME: Schema = {"type": "string", "format": "date-time"}
NULLABLE_TIME: Schema = {"type": ["string", "null"], "format": "date-time"}
IDS = array(ID, max_items=500, min_items=1)

# -- request bodies (server/clinic/groups.py and the handlers) -----------------------------------

COLOR = {"type": "string", "pattern": "^#[0-9A-Fa-f]{6}$"}
BRAND_IN = obj([], closed=True, name=text(100, 0), logo_url=text(500, 0), primary_color=COLOR,
                accent_color=COLOR, welcome_text=text(1000, 0), support_phone=text(40, 0), crisis_line=text(120, 0))
QUESTIONNAIRE_IN = obj(["instrument", "every"], closed=True,
                       instrument={"type": "string", "enum": ["PHQ-9", "GAD-7"]},
                       every={"type": "string", "enum": ["session", "week", "2weeks"]})
SLOT = obj(["weekday", "start", "minutes"], closed=True, weekday=integer(0, 6),
            start={"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}, minutes=integer(1, 1440))
BILLING_IN = obj([], closed=True, code={"type": "string", "pattern": "^[A-Za-z0-9]{4,7}$"},
                  min_billable_minutes=integer(0, 1440))
GROUP_FIELDS: dict[str, Schema] = dict(
    name=text(120), program={"type": "string", "enum": ["IOP", "PHP", "OP"]},
    facilitator_ids=array(ID, max_items=50), timezone={"type": "string", "description": "an IANA timezone"},
    capacity=integer(1, 500), weekly_minimum_hours=integer(0, 168), schedule=array(SLOT, max_items=21),
    billing=BILLING_IN, brand=BRAND_IN,
    questionnaires={**array(QUESTIONNAIRE_IN, max_items=2), "description": "asked while patients wait; each "
                    "instrument once"},
)
GROUP_CREATE = obj(["name", "program"], closed=True, **GROUP_FIELDS)
BRAND_PATCH = obj([], closed=True, **{name: {"anyOf": [field, {"type": "null"}]}
                                       for name, field in BRAND_IN["properties"].items()})
GROUP_PATCH = obj([], closed=True, **{**GROUP_FIELDS, "brand": {
    "anyOf": [BRAND_PATCH, {"type": "null"}],
    "description": "fields to set (the rest are kept; a null field is the clinic's again); null clears the "
                   "group's own brand, so the clinic's applies"}})
NPI = {"type": "string", "pattern": "^[0-9]{10}$"}
USER_CREATE = obj(["username", "password", "role"], closed=True,
                  username={"type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,64}$"}, password=text(1024, 8),
                  role={"type": "string", "enum": ["admin", "facilitator"]}, name=text(100), npi=NPI)
USER_PATCH = {**obj([], closed=True, name=text(100), npi=NPI, active=BOOL), "minProperties": 1}
PATIENT_CREATE = obj(["display_name"], closed=True, display_name=text(60), external_id=text(64),
                     email={"type": "string", "format": "email", "maxLength": 254}, reminders=BOOL)
PATIENT_PATCH = {**obj([], closed=True, display_name=text(60),
                       external_id={"type": ["string", "null"], "maxLength": 64},
                       email={"type": ["string", "null"], "format": "email", "maxLength": 254}, reminders=BOOL),
                 "minProperties": 1}
ENROLLMENT_CREATE = obj(["patient_id"], closed=True, patient_id=ID, starts_on=DATE, ends_on=DATE)
LOGIN = obj(["username", "password"], closed=True, username=text(64), password=text(1024))
ADMIT = {"oneOf": [obj(["patient_ids"], closed=True, patient_ids=IDS),
                   obj(["all"], closed=True, all={"const": True})]}
PATIENT_ID_ONLY = obj(["patient_id"], closed=True, patient_id=ID)
DECLINE = obj(["patient_id"], closed=True, patient_id=ID, message=text(500))
REMOVE = obj(["patient_id"], closed=True, patient_id=ID, reason=text(200))
MESSAGE = obj(["text"], closed=True, text=text(500), patient_id=ID)
MUTE = {"oneOf": [PATIENT_ID_ONLY, obj(["all"], closed=True, all={"const": True})]}
CHAT_SWITCH = obj(["enabled"], closed=True, enabled={"type": "boolean"})
SCREEN_SHARE = obj(["patient_id", "allowed"], closed=True, patient_id=ID, allowed={"type": "boolean"})
ACKNOWLEDGE = obj([], closed=True, note=text(500, 0))
FEEDBACK_IN = obj(["session_id", "rating"], closed=True, session_id=ID, rating=integer(1, 5), comment=text(1000, 0))
CORRECTION = obj(["intervals", "reason"], closed=True,
                  intervals=array({"type": "array", "items": TIME, "minItems": 2, "maxItems": 2}, max_items=100),
                  reason=text(500))

# -- answers -------------------------------------------------------------------------------------

SCHEMAS: dict[str, Schema] = {
    "Error": obj(["error"], error={
        "type": "object", "required": ["code", "message"],
        "description": "Some codes add fields: session_open has session_id, already_enrolled enrollment_id.",
        "properties": {
            "code": {"type": "string", "enum": [str(c) for c in http_codes()],
                     "description": "; ".join(f"{c}: {CODES[c].meaning}" for c in http_codes())},
            "message": S,
            "request_id": {"type": "string", "description": "as in X-Request-ID: quote it to the operator"},
        },
    }),
    "WebSocketError": {
        "description": "The realtime protocol's error frame (GET /api/v1/ws), not an HTTP answer.",
        **obj(["type", "code", "message"], type={"const": "error"}, message=S, code={
            "type": "string", "enum": [str(c) for c in websocket_codes()],
            "description": "; ".join(f"{c}: {CODES[c].meaning}" for c in websocket_codes())}),
    },
    "User": obj(["id", "name", "role"], id=ID, name=NULLABLE_S, username=S, npi=NULLABLE_S,
                 role={"type": "string", "enum": ["admin", "facilitator"]},
                 active={"type": "boolean", "description": "false: deactivated, cannot sign in"}),
    "SignedIn": obj(["user", "csrf_token"], user=ref("User"), csrf_token=S),
    "Group": obj(["id", "name", "program", "facilitator_ids", "timezone", "capacity", "schedule", "billing",
                   "brand", "open_session_id"],
                  id=ID, name=S, program={"type": "string", "enum": ["IOP", "PHP", "OP"]}, facilitator_ids=array(ID),
                  timezone=S, capacity=INT, weekly_minimum_hours=INT, schedule=array(SLOT),
                  billing={"type": "object"}, brand={"type": "object"}, created_at=TIME,
                  questionnaires=array(QUESTIONNAIRE_IN),
                  open_session_id={"type": ["string", "null"], "description": "the open session, or null"}),
    "Patient": obj(["id", "display_name"], id=ID, display_name=S, external_id=NULLABLE_S, created_at=TIME,
                    email=NULLABLE_S, reminders=BOOL),
    "Enrollment": obj(["id", "patient_id", "group_id", "active"], id=ID, patient_id=ID, group_id=ID,
                       starts_on={"type": ["string", "null"], "format": "date"},
                       ends_on={"type": ["string", "null"], "format": "date"}, created_at=TIME,
                       ended_at=NULLABLE_TIME, active=BOOL,
                       join_url={"type": "string", "format": "uri", "description": "present while active"}),
    "Session": obj(["id", "group_id", "state", "started_at"], id=ID, group_id=ID,
                    state={"type": "string", "enum": ["open", "ended"]}, started_at=TIME, ended_at=NULLABLE_TIME,
                    waiting=array(obj(["patient_id", "display_name", "waiting_since"], patient_id=ID,
                                       display_name=S, waiting_since=TIME)),
                    participants=array(obj(["patient_id", "display_name", "joined_at"], patient_id=ID,
                                            display_name=S, joined_at=TIME)),
                    media_node={"type": ["string", "null"], "description": "the process hosting its media"}),
    "Node": obj(["id", "address", "sessions", "participants", "started_at", "last_seen"], id=S, address=S,
                 sessions=INT, participants=INT, started_at=TIME, last_seen=TIME),
    "AttendanceRecord": obj(
        ["session_id", "group_id", "patient_id", "service_date", "status", "intervals", "attended_seconds",
         "attended_minutes"],
        session_id=ID, group_id=ID, patient_id=ID, service_date=DATE,
        status={"type": "string", "enum": ["attended", "absent", "declined"]}, first_join=NULLABLE_TIME,
        last_leave=NULLABLE_TIME, intervals=array(array(TIME)), attended_seconds=INT, attended_minutes=INT,
        waited_seconds=INT, reconnects=INT, video_seconds=INT, audio_only_seconds=INT,
        short_join={"type": "boolean", "description": "attended for less than PORCHLIGHT_MIN_ATTENDED_SECONDS "
                                                      "(60): still recorded; its billing record is below_minimum"}),
    "WeeklyTotal": obj(["patient_id", "week", "attended_seconds", "minimum_seconds", "meets_minimum",
                         "dropout_risk"], patient_id=ID, week=S, attended_seconds=INT, minimum_seconds=INT,
                        meets_minimum=BOOL, dropout_risk=BOOL),
    "Measure": obj(["id", "instrument", "at", "score", "band", "session_id"], id=ID,
                    instrument={"type": "string", "enum": ["PHQ-9", "GAD-7"]}, at=TIME, score=integer(0, 27),
                    band={"type": "string", "enum": ["minimal", "mild", "moderate", "moderately severe", "severe"]},
                    session_id={"type": ["string", "null"]}),
    "Alert": obj(["id", "patient_id", "display_name", "session_id", "instrument", "item", "value", "at", "status"],
                  id=ID, patient_id=ID, display_name=S, session_id={"type": ["string", "null"]}, group_id=ID,
                  instrument=S, item=S, value=integer(1, 3), at=TIME,
                  status={"type": "string", "enum": ["open", "acknowledged"]}, acknowledged_by=ID,
                  acknowledged_at=TIME, note={"type": ["string", "null"]}),
    "Feedback": obj(["session_id", "group_id", "patient_id", "rating", "at"], session_id=ID, group_id=ID,
                     patient_id=ID, facilitator_id={"type": ["string", "null"]}, rating=integer(1, 5),
                     comment={"type": ["string", "null"]}, at=TIME),
    "Delivery": obj(["id", "record_id", "status", "attempts"], id=ID, record_id=ID,
                     status={"type": "string", "enum": ["pending", "delivered", "failed"]}, attempts=INT),
    "Health": obj(["status"], status={"type": "string", "enum": ["ok", "unavailable", "draining"]},
                   redis={"type": "string", "enum": ["up", "down"]}),
}

