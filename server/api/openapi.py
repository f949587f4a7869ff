"""The OpenAPI 3.1 document served at /api/v1/openapi.json.

Operations are described here beside their routes' names (the operationId is the route's name);
a test checks that the document and the application's router list exactly the same methods and
paths, and tests/test_openapi_fuzz.py sends requests generated from it. Request schemas follow
the validators (server/validation.py, server/clinic/*): required fields, types, lengths; the
server may refuse more than a schema says (an unknown id is a 400 or 404), never less.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server import __version__
from server.errors import CODES, ErrorCode, http_codes, websocket_codes

Schema = dict[str, Any]

API = "/api/v1"
ERROR: Schema = {"$ref": "#/components/schemas/Error"}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], closed: bool = False, **props: Any) -> Schema:
    """An object schema; `closed` (request bodies) refuses unknown fields as the validators do."""
    schema: Schema = {"type": "object", "required": required, "properties": props}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _list(items: Schema, max_items: int | None = None, min_items: int | None = None) -> Schema:
    schema: Schema = {"type": "array", "items": items}
    if max_items is not None:
        schema["maxItems"] = max_items
    if min_items is not None:
        schema["minItems"] = min_items
    return schema


def _text(max_len: int, min_len: int = 1, **extra: Any) -> Schema:
    return {"type": "string", "minLength": min_len, "maxLength": max_len, **extra}


def _int(low: int, high: int) -> Schema:
    return {"type": "integer", "minimum": low, "maximum": high}


S: Schema = {"type": "string"}
NULLABLE_S: Schema = {"type": ["string", "null"]}
BOOL: Schema = {"type": "boolean"}
INT: Schema = {"type": "integer"}
ID: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
DATE: Schema = {"type": "string", "format": "date"}
TIME: Schema = {"type": "string", "format": "date-time"}
NULLABLE_TIME: Schema = {"type": ["string", "null"], "format": "date-time"}
IDS = _list(ID, max_items=500, min_items=1)

# -- request bodies (server/clinic/groups.py and the handlers) -----------------------------------

COLOR = {"type": "string", "pattern": "^#[0-9A-Fa-f]{6}$"}
BRAND_IN = _obj([], closed=True, name=_text(100, 0), logo_url=_text(500, 0), primary_color=COLOR,
                accent_color=COLOR, welcome_text=_text(1000, 0), support_phone=_text(40, 0))
SLOT = _obj(["weekday", "start", "minutes"], closed=True, weekday=_int(0, 6),
            start={"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}, minutes=_int(1, 1440))
BILLING_IN = _obj([], closed=True, code={"type": "string", "pattern": "^[A-Za-z0-9]{4,7}$"},
                  min_billable_minutes=_int(0, 1440))
GROUP_FIELDS: dict[str, Schema] = dict(
    name=_text(120), program={"type": "string", "enum": ["IOP", "PHP", "OP"]},
    facilitator_ids=_list(ID, max_items=50), timezone={"type": "string", "description": "an IANA timezone"},
    capacity=_int(1, 500), weekly_minimum_hours=_int(0, 168), schedule=_list(SLOT, max_items=21),
    billing=BILLING_IN, brand=BRAND_IN,
)
GROUP_CREATE = _obj(["name", "program"], closed=True, **GROUP_FIELDS)
GROUP_PATCH = _obj([], closed=True, **GROUP_FIELDS)
PATIENT_CREATE = _obj(["display_name"], closed=True, display_name=_text(60), external_id=_text(64))
ENROLLMENT_CREATE = _obj(["patient_id"], closed=True, patient_id=ID, starts_on=DATE, ends_on=DATE)
LOGIN = _obj(["username", "password"], closed=True, username=_text(64), password=_text(1024))
ADMIT = {"oneOf": [_obj(["patient_ids"], closed=True, patient_ids=IDS),
                   _obj(["all"], closed=True, all={"const": True})]}
PATIENT_ID_ONLY = _obj(["patient_id"], closed=True, patient_id=ID)
DECLINE = _obj(["patient_id"], closed=True, patient_id=ID, message=_text(500))
REMOVE = _obj(["patient_id"], closed=True, patient_id=ID, reason=_text(200))
MESSAGE = _obj(["text"], closed=True, text=_text(500), patient_id=ID)
MUTE = {"oneOf": [PATIENT_ID_ONLY, _obj(["all"], closed=True, all={"const": True})]}
CHAT_SWITCH = _obj(["enabled"], closed=True, enabled={"type": "boolean"})
CORRECTION = _obj(["intervals", "reason"], closed=True,
                  intervals=_list({"type": "array", "items": TIME, "minItems": 2, "maxItems": 2}, max_items=100),
                  reason=_text(500))

# -- answers -------------------------------------------------------------------------------------

SCHEMAS: dict[str, Schema] = {
    "Error": _obj(["error"], error={
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
        **_obj(["type", "code", "message"], type={"const": "error"}, message=S, code={
            "type": "string", "enum": [str(c) for c in websocket_codes()],
            "description": "; ".join(f"{c}: {CODES[c].meaning}" for c in websocket_codes())}),
    },
    "User": _obj(["id", "name", "role"], id=ID, name=NULLABLE_S, username=S, npi=NULLABLE_S,
                 role={"type": "string", "enum": ["admin", "facilitator"]}),
    "SignedIn": _obj(["user", "csrf_token"], user=_ref("User"), csrf_token=S),
    "Group": _obj(["id", "name", "program", "facilitator_ids", "timezone", "capacity", "schedule", "billing",
                   "brand", "open_session_id"],
                  id=ID, name=S, program={"type": "string", "enum": ["IOP", "PHP", "OP"]}, facilitator_ids=_list(ID),
                  timezone=S, capacity=INT, weekly_minimum_hours=INT, schedule=_list(SLOT),
                  billing={"type": "object"}, brand={"type": "object"}, created_at=TIME,
                  open_session_id={"type": ["string", "null"], "description": "the open session, or null"}),
    "Patient": _obj(["id", "display_name"], id=ID, display_name=S, external_id=NULLABLE_S, created_at=TIME),
    "Enrollment": _obj(["id", "patient_id", "group_id", "active"], id=ID, patient_id=ID, group_id=ID,
                       starts_on={"type": ["string", "null"], "format": "date"},
                       ends_on={"type": ["string", "null"], "format": "date"}, created_at=TIME,
                       ended_at=NULLABLE_TIME, active=BOOL,
                       join_url={"type": "string", "format": "uri", "description": "present while active"}),
    "Session": _obj(["id", "group_id", "state", "started_at"], id=ID, group_id=ID,
                    state={"type": "string", "enum": ["open", "ended"]}, started_at=TIME, ended_at=NULLABLE_TIME,
                    waiting=_list(_obj(["patient_id", "display_name", "waiting_since"], patient_id=ID,
                                       display_name=S, waiting_since=TIME)),
                    participants=_list(_obj(["patient_id", "display_name", "joined_at"], patient_id=ID,
                                            display_name=S, joined_at=TIME)),
                    media_node={"type": ["string", "null"], "description": "the process hosting its media"}),
    "Node": _obj(["id", "address", "sessions", "participants", "started_at", "last_seen"], id=S, address=S,
                 sessions=INT, participants=INT, started_at=TIME, last_seen=TIME),
    "AttendanceRecord": _obj(
        ["session_id", "group_id", "patient_id", "service_date", "status", "intervals", "attended_seconds",
         "attended_minutes"],
        session_id=ID, group_id=ID, patient_id=ID, service_date=DATE,
        status={"type": "string", "enum": ["attended", "absent", "declined"]}, first_join=NULLABLE_TIME,
        last_leave=NULLABLE_TIME, intervals=_list(_list(TIME)), attended_seconds=INT, attended_minutes=INT,
        waited_seconds=INT, reconnects=INT, video_seconds=INT, audio_only_seconds=INT),
    "WeeklyTotal": _obj(["patient_id", "week", "attended_seconds", "minimum_seconds", "meets_minimum",
                         "dropout_risk"], patient_id=ID, week=S, attended_seconds=INT, minimum_seconds=INT,
                        meets_minimum=BOOL, dropout_risk=BOOL),
    "Delivery": _obj(["id", "record_id", "status", "attempts"], id=ID, record_id=ID,
                     status={"type": "string", "enum": ["pending", "delivered", "failed"]}, attempts=INT),
    "Health": _obj(["status"], status={"type": "string", "enum": ["ok", "unavailable", "draining"]},
                   redis={"type": "string", "enum": ["up", "down"]}),
}

# -- parameters and shared responses -------------------------------------------------------------

CSRF_PARAM = {"$ref": "#/components/parameters/CsrfToken"}
PARAMETERS: dict[str, Schema] = {
    "CsrfToken": {"name": "X-CSRF-Token", "in": "header", "required": True, "schema": S,
                  "description": "the csrf_token of the login answer (also at GET /api/v1/me); 403 csrf_failed "
                                 "when missing or wrong, or when an Origin other than PORCHLIGHT_PUBLIC_URL's is sent"},
}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


FROM = _query("from", DATE, "first day, YYYY-MM-DD in the group's timezone (default: 30 days ago)")
TO = _query("to", DATE, "last day, inclusive (default: today); at most 3 years after from")
GROUP_Q = _query("group_id", ID, "only this group")
PATIENT_Q = _query("patient_id", ID, "only this patient")
STATUS_Q = _query("status", {"type": "string", "enum": ["pending", "delivered", "failed"]}, "only this status")
NEXT_Q = _query("next", S, "where to go after signing in (a path on this server; anything else is ignored)")


def _codes(status: int) -> list[str]:
    return [str(c) for c, m in CODES.items() if m.status == status and m.sent and c is not ErrorCode.HTTP_ERROR]


RESPONSES: dict[str, Schema] = {
    name: {"description": f"{description} (codes: {', '.join(_codes(status))})",
           "content": {"application/json": {"schema": ERROR}}}
    for name, status, description in [
        ("BadRequest", 400, "malformed or invalid input: body, path id or query parameter"),
        ("Unauthorized", 401, "no valid staff session"),
        ("Forbidden", 403, "a missing or wrong X-CSRF-Token, a foreign Origin, or a role or group not allowed"),
        ("NotFound", 404, "no such resource"),
        ("Conflict", 409, "the action does not fit the current state"),
        ("PayloadTooLarge", 413, "the body is over the limit (64 KiB by default)"),
        ("TooManyRequests", 429, "rate-limited; try again later"),
        ("Unavailable", 503, "Redis is unavailable; try again"),
    ]
}
_STATUS_RESPONSE = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
                    413: "PayloadTooLarge", 429: "TooManyRequests", 503: "Unavailable"}


def _json(schema: Schema) -> Schema:
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary: str, role: str | None, *, body: Schema | None = None, ok: int = 200, answer: Schema | None = None,
        errors: tuple[int, ...] = (), query: tuple[Schema, ...] = (), ok_content: Schema | None = None,
        csrf: bool | None = None, ok_description: str = "OK") -> Schema:
    """A JSON operation. Staff operations (role set) answer 401, 503; state-changing ones need the
    CSRF header (403); a body adds 400 and 413; `errors` adds the others that can happen."""
    ok_response: Schema = {"description": ok_description}
    if ok_content is not None:
        ok_response["content"] = ok_content
    elif answer is not None:
        ok_response.update(_json(answer))
    op: Schema = {"summary": summary, "responses": {str(ok): ok_response}}
    statuses = set(errors) | {503}
    parameters: list[Schema] = list(query)
    if query:
        statuses.add(400)
    if role:
        op["x-role"] = role
        op["security"] = [{"session": []}]
        statuses.add(401)
        if role != "staff":  # admins only, or the facilitators of the group (and admins)
            statuses.add(403)
    if csrf:
        parameters.append(CSRF_PARAM)
        statuses.add(403)
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
        statuses |= {400, 413}
    for status in sorted(statuses):
        op["responses"][str(status)] = {"$ref": f"#/components/responses/{_STATUS_RESPONSE[status]}"}
    if parameters:
        op["parameters"] = parameters
    return op


def _staff_change(summary: str, role: str, **kw: Any) -> Schema:
    return _op(summary, role, csrf=True, **kw)


def _page(summary: str, role: str | None = None, query: tuple[Schema, ...] = (), by_id: bool = False) -> Schema:
    """A page (not JSON): staff pages redirect to /login without a session, 403 for another role."""
    ok = {"description": "OK", "content": {"text/html": {"schema": S}}}
    op: Schema = {"summary": summary, "responses": {"200": ok}}
    if role:
        op["x-role"] = role
        op["responses"]["302"] = {"description": "not signed in: redirect to /login?next=...",
                                  "headers": {"Location": {"schema": S}}}
        op["responses"]["403"] = {"description": "signed in with another role: an HTML page",
                                  "content": {"text/html": {"schema": S}}}
    if by_id:
        op["responses"]["404"] = {"description": "no such thing: an HTML page", "content": {"text/html": {"schema": S}}}
    if query:
        op["parameters"] = list(query)
    return op


SESSION_ACTION = (400, 403, 404, 409)  # a bad id, another group's session, no such session, the wrong state

# (method, path) -> operation; the operationId is added from the route's name.
OPERATIONS: dict[tuple[str, str], Schema] = {
    ("GET", "/healthz"): {"summary": "200 when the server and Redis are usable",
                          "responses": {"200": {"description": "ready", **_json(_ref("Health"))},
                                        "503": {"description": "Redis is down", **_json(_ref("Health"))}}},
    ("GET", "/readyz"): {"summary": "Readiness, the same as /healthz: 200 when Redis answers within 1 s",
                         "responses": {"200": {"description": "ready", **_json(_ref("Health"))},
                                       "503": {"description": "Redis is down or the process is draining",
                                               **_json(_ref("Health"))}}},
    ("GET", "/livez"): {"summary": "Liveness: 200 while the process runs; Redis is not asked",
                        "responses": {"200": {"description": "OK", **_json(_ref("Health"))}}},
    ("GET", "/metrics"): {"summary": "Prometheus text metrics (exposition format 0.0.4)", "responses": {
        "200": {"description": "OK", "content": {"text/plain; version=0.0.4": {"schema": S}}}}},
    ("GET", f"{API}/openapi.json"): {"summary": "This document", "responses": {
        "200": {"description": "OK", **_json({"type": "object"})}}},
    ("POST", f"{API}/login"): _op(
        "Sign in; sets the session cookie, returns csrf_token. 403 csrf_failed from a foreign page (Origin, "
        "Sec-Fetch-Site); 429 rate_limited after failed attempts (with retry_after_seconds)", None, body=LOGIN,
        answer=_ref("SignedIn"), errors=(401, 403, 429)),
    ("POST", f"{API}/logout"): _staff_change("End (revoke) the staff session", "staff",
                                             answer=_obj(["ok"], ok={"const": True})),
    ("GET", f"{API}/me"): _op("The signed-in user and csrf_token", "staff", answer=_ref("SignedIn")),
    ("GET", f"{API}/nodes"): _op("The processes of the deployment that heartbeat, with their load", "admin",
                                 answer=_obj(["nodes"], nodes=_list(_ref("Node")))),
    ("POST", f"{API}/groups"): _staff_change("Create a group", "admin", body=GROUP_CREATE, ok=201,
                                             answer=_ref("Group")),
    ("GET", f"{API}/groups"): _op("Groups visible to the caller, with open_session_id", "staff",
                                  answer=_obj(["groups"], groups=_list(_ref("Group")))),
    ("GET", f"{API}/groups/{{group_id}}"): _op("One group", "staff", answer=_ref("Group"), errors=(400, 403, 404)),
    ("PATCH", f"{API}/groups/{{group_id}}"): _staff_change("Change any creation field, e.g. brand", "admin",
                                                           body=GROUP_PATCH, answer=_ref("Group"), errors=(404,)),
    ("GET", f"{API}/groups/{{group_id}}/enrollments"): _op(
        "The group's enrolments", "admin", answer=_obj(["enrollments"], enrollments=_list(_ref("Enrollment"))),
        errors=(400, 404)),
    ("POST", f"{API}/groups/{{group_id}}/enrollments"): _staff_change(
        "Enrol a patient; returns join_url (409 already_enrolled)", "admin", body=ENROLLMENT_CREATE, ok=201,
        answer=_ref("Enrollment"), errors=(404, 409)),
    ("POST", f"{API}/groups/{{group_id}}/sessions"): _staff_change(
        "Open a session (409 session_open, with session_id, if one is)", "facilitator", ok=201,
        answer=_ref("Session"), errors=(400, 404, 409)),
    ("GET", f"{API}/patients"): _op("All patients", "admin",
                                    answer=_obj(["patients"], patients=_list(_ref("Patient")))),
    ("POST", f"{API}/patients"): _staff_change("Create a patient", "admin", body=PATIENT_CREATE, ok=201,
                                               answer=_ref("Patient")),
    ("POST", f"{API}/enrollments/{{enrollment_id}}/rotate-link"): _staff_change(
        "New join link; the old stops at once", "admin", answer=_obj(["join_url"], join_url=S),
        errors=(400, 404, 409)),
    ("POST", f"{API}/enrollments/{{enrollment_id}}/end"): _staff_change(
        "End the enrolment; its link stops (409 enrollment_ended)", "admin", answer=_ref("Enrollment"),
        errors=(400, 404, 409)),
    ("GET", f"{API}/sessions/{{session_id}}"): _op("A session with its waiting list and participants", "facilitator",
                                                   answer=_ref("Session"), errors=(400, 403, 404)),
    ("POST", f"{API}/sessions/{{session_id}}/admit"): _staff_change(
        "Admit patients (all or none; 409 not_waiting, capacity_reached)", "facilitator", body=ADMIT,
        answer=_obj(["admitted"], admitted=_list(ID)), errors=SESSION_ACTION),
    ("POST", f"{API}/sessions/{{session_id}}/decline"): _staff_change(
        "Decline a waiting patient", "facilitator", body=DECLINE, answer=_obj(["declined"], declined=ID),
        errors=SESSION_ACTION),
    ("POST", f"{API}/sessions/{{session_id}}/remove"): _staff_change(
        "Remove a patient from the session", "facilitator", body=REMOVE, answer=_obj(["removed"], removed=ID),
        errors=SESSION_ACTION),
    ("POST", f"{API}/sessions/{{session_id}}/send-back"): _staff_change(
        "Send a patient back to the waiting room", "facilitator", body=PATIENT_ID_ONLY,
        answer=_obj(["sent_back"], sent_back=ID), errors=SESSION_ACTION),
    ("POST", f"{API}/sessions/{{session_id}}/message"): _staff_change(
        "Message everyone waiting, or one waiting patient (patient_id)", "facilitator", body=MESSAGE,
        answer=_obj(["delivered"], delivered={"type": "integer", "description": "how many received it"}),
        errors=SESSION_ACTION),
    ("POST", f"{API}/sessions/{{session_id}}/mute"): _staff_change(
        "Mute a participant, or every admitted patient (all: true)", "facilitator", body=MUTE,
        answer=_obj(["muted"], muted={"oneOf": [ID, _list(ID)]}), errors=SESSION_ACTION),
    ("POST", f"{API}/sessions/{{session_id}}/chat"): _staff_change(
        "Turn group chat on or off (messages to the staff always go)", "facilitator", body=CHAT_SWITCH,
        answer=_obj(["chat_enabled"], chat_enabled={"type": "boolean"}), errors=SESSION_ACTION),
    ("POST", f"{API}/sessions/{{session_id}}/end"): _staff_change(
        "End the session; attendance is final", "facilitator", answer=_ref("Session"), errors=SESSION_ACTION),
    ("GET", f"{API}/sessions/{{session_id}}/events"): _op(
        "Raw attendance events, in order", "facilitator",
        answer=_obj(["events"], events=_list(_obj(["type"], type=S))), errors=(400, 403, 404)),
    ("GET", f"{API}/sessions/{{session_id}}/attendance"): _op(
        "Attendance records of a session (final: true once final)", "facilitator",
        answer=_obj(["final", "records"], final=BOOL, records=_list(_ref("AttendanceRecord"))),
        errors=(400, 403, 404)),
    ("POST", f"{API}/sessions/{{session_id}}/attendance/{{patient_id}}/correction"): _staff_change(
        "Correct a patient's attendance; a superseding billing record is queued (409 not_final)", "admin",
        body=CORRECTION, answer=_ref("AttendanceRecord"), errors=(404, 409)),
    ("GET", f"{API}/attendance"): _op("Attendance records (each pull is audited as an export)", "admin",
                                      query=(FROM, TO, GROUP_Q, PATIENT_Q),
                                      answer=_obj(["records"], records=_list(_ref("AttendanceRecord")))),
    ("GET", f"{API}/attendance/weekly"): _op("Per patient per ISO week vs the program minimum, dropout risk", "admin",
                                             query=(FROM, TO, GROUP_Q),
                                             answer=_obj(["weeks"], weeks=_list(_ref("WeeklyTotal")))),
    ("GET", f"{API}/attendance.csv"): _op(
        "The attendance records as CSV, one row per patient per session (Content-Disposition: attachment)",
        "admin", query=(FROM, TO, GROUP_Q, PATIENT_Q), ok_content={"text/csv": {"schema": S}}),
    ("GET", f"{API}/billing/deliveries"): _op("Billing delivery log", "admin", query=(STATUS_Q,),
                                              answer=_obj(["deliveries"], deliveries=_list(_ref("Delivery")))),
    ("POST", f"{API}/billing/deliveries/{{record_id}}/replay"): _staff_change(
        "Replay a failed delivery (409 not_failed otherwise)", "admin", answer=_ref("Delivery"),
        errors=(400, 404, 409)),
    ("GET", f"{API}/ws"): {"summary": "WebSocket upgrade: the realtime protocol (see the README); errors after the "
                                      "upgrade are WebSocketError frames",
                           "responses": {"101": {"description": "Switching Protocols"},
                                         "400": {"description": "not a WebSocket upgrade", **_json(ERROR)},
                                         "429": {"$ref": "#/components/responses/TooManyRequests"},
                                         "503": {"description": "draining or Redis unavailable", **_json(ERROR)}}},
    ("GET", "/j/{token}"): {"summary": "The patient's join page", "responses": {
        "200": {"description": "OK", "content": {"text/html": {"schema": S}}},
        "404": {"description": "a bad, expired or rotated link: a plain page with the clinic's phone",
                "content": {"text/html": {"schema": S}}}}},
    ("GET", "/j/{token}/calendar.ics"): {"summary": "The group's next meetings as an iCalendar feed", "responses": {
        "200": {"description": "OK", "content": {"text/calendar": {"schema": S}}},
        "404": {"description": "a bad, expired or rotated link", **_json(ERROR)}}},
    ("GET", "/"): _page("Redirects to the signed-in user's start page (or /login)", "staff"),
    ("GET", "/login"): _page("Staff sign-in page", query=(NEXT_Q,)),
    ("GET", "/console"): _page("The facilitator's console", "facilitator"),
    ("GET", "/admin"): _page("Admin: groups and patients", "admin"),
    ("GET", "/admin/groups/{group_id}"): _page("Admin: a group's enrolments, links and brand editor", "admin",
                                               by_id=True),
    ("GET", "/admin/attendance"): _page("Admin: attendance minutes, weekly hours, dropout risk", "admin",
                                        query=(FROM, TO, GROUP_Q, PATIENT_Q)),
    ("GET", "/admin/billing"): _page("Admin: billing deliveries and replay", "admin", query=(STATUS_Q,)),
}

PATH_PARAMS: dict[str, Schema] = {"token": S}  # a join token is not an id; every other path parameter is


def route_names(app: web.Application) -> dict[tuple[str, str], str]:
    """(method, path template) -> the route's name, for every named route."""
    names = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.name and path and route.method not in ("HEAD", "*"):
            names[(route.method, path)] = route.name
    return names


def openapi_document(app: web.Application) -> dict[str, Any]:
    names = route_names(app)
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in OPERATIONS.items():
        entry = dict(op)
        name = names.get((method, path))
        if name:
            entry["operationId"] = name.replace(".", "_")
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            entry["parameters"] = [{"name": p, "in": "path", "required": True, "schema": PATH_PARAMS.get(p, ID)}
                                   for p in params] + list(op.get("parameters", []))
        paths.setdefault(path, {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "Porchlight", "version": __version__,
                 "description": "Staff API. Sign in with POST /api/v1/login; state-changing requests then carry "
                                "X-CSRF-Token (from login). Errors are JSON {\"error\": {\"code\", \"message\", "
                                "\"request_id\"}}; a method a path does not have is 405 method_not_allowed with "
                                "an Allow header."},
        "paths": paths,
        "components": {
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "porchlight_session"}},
            "schemas": SCHEMAS,
            "parameters": PARAMETERS,
            "responses": RESPONSES,
        },
    }
