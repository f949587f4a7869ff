"""The OpenAPI 3.1 document served at /api/v1/openapi.json.

Operations are described here beside their routes' names; a test checks that the document
and the application's router list exactly the same methods and paths.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server import __version__

ERROR = {"$ref": "#/components/schemas/Error"}
OBJ: dict[str, Any] = {"type": "object"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary: str, role: str | None, body: dict[str, Any] | None = None, ok: int = 200,
        answer: dict[str, Any] | None = None, errors: tuple[int, ...] = (400, 401, 403, 404, 409)) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {str(ok): {"description": "OK", **_json(answer or OBJ)}}}
    for status in errors:
        op["responses"][str(status)] = {"description": "error", **_json(ERROR)}
    op["responses"]["503"] = {"description": "Redis unavailable", **_json(ERROR)}
    if role:
        op["x-role"] = role
        op["security"] = [{"session": []}]
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    return op


def _page(summary: str, role: str | None = None, content_type: str = "text/html") -> dict[str, Any]:
    """A page (not JSON): staff pages redirect to /login without a session, 403 for another role."""
    ok = {"description": "OK", "content": {content_type: {}}}
    op: dict[str, Any] = {"summary": summary, "responses": {"200": ok}}
    if role:
        op["x-role"] = role
        op["responses"]["302"] = {"description": "not signed in: redirect to /login?next=..."}
        op["responses"]["403"] = {"description": "signed in with another role: an HTML page", "content": {
            "text/html": {}}}
    else:
        op["responses"]["404"] = {"description": "a bad, expired or rotated link", "content": {content_type: {}}}
    return op


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "additionalProperties": False, "properties": props}


S = {"type": "string"}
IDS = {"type": "array", "items": S}
BRAND = _obj([], name=S, logo_url=S, primary_color=S, accent_color=S, welcome_text=S, support_phone=S)
GROUP_FIELDS = dict(
    name=S, program={"enum": ["IOP", "PHP", "OP"]}, facilitator_ids=IDS, timezone=S,
    capacity={"type": "integer"}, weekly_minimum_hours={"type": "integer"},
    schedule={"type": "array", "items": _obj(["weekday", "start", "minutes"], weekday={"type": "integer"},
                                               start=S, minutes={"type": "integer"})},
    billing=_obj([], code=S, min_billable_minutes={"type": "integer"}), brand=BRAND,
)
PID = _obj(["patient_id"], patient_id=S)

# (method, path) -> operation
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/healthz"): _op("200 when the server and Redis are usable", None, errors=()),
    ("GET", "/readyz"): _op("Readiness, the same as /healthz: 200 when Redis answers within 1 s", None, errors=()),
    ("GET", "/livez"): {"summary": "Liveness: 200 while the process runs; Redis is not asked",
                        "responses": {"200": {"description": "OK", **_json(OBJ)}}},
    ("GET", "/metrics"): _op("Prometheus text metrics", None, errors=()),
    ("GET", "/api/v1/openapi.json"): _op("This document", None, errors=()),
    ("POST", "/api/v1/login"): _op("Sign in; sets the session cookie, returns csrf_token", None,
                                   _obj(["username", "password"], username=S, password=S), errors=(400, 401, 429)),
    ("POST", "/api/v1/logout"): _op("End (revoke) the staff session", "staff", errors=(401, 403)),
    ("GET", "/api/v1/me"): _op("The signed-in user and csrf_token", "staff", errors=(401,)),
    ("POST", "/api/v1/groups"): _op("Create a group", "admin", _obj(["name", "program"], **GROUP_FIELDS), 201),
    ("GET", "/api/v1/groups"): _op("Groups visible to the caller, with open_session_id", "staff"),
    ("GET", "/api/v1/groups/{group_id}"): _op("One group", "staff"),
    ("PATCH", "/api/v1/groups/{group_id}"): _op("Change any creation field, e.g. brand", "admin",
                                                 _obj([], **GROUP_FIELDS)),
    ("GET", "/api/v1/groups/{group_id}/enrollments"): _op("The group's enrolments", "admin"),
    ("POST", "/api/v1/groups/{group_id}/enrollments"): _op(
        "Enrol a patient; returns join_url", "admin", _obj(["patient_id"], patient_id=S, starts_on=S, ends_on=S), 201),
    ("POST", "/api/v1/groups/{group_id}/sessions"): _op("Open a session (409 session_open if one is)", "facilitator",
                                                         ok=201),
    ("GET", "/api/v1/patients"): _op("All patients", "admin"),
    ("POST", "/api/v1/patients"): _op("Create a patient", "admin", _obj(["display_name"], display_name=S,
                                                                         external_id=S), 201),
    ("POST", "/api/v1/enrollments/{enrollment_id}/rotate-link"): _op("New join link; the old stops at once", "admin"),
    ("POST", "/api/v1/enrollments/{enrollment_id}/end"): _op("End the enrolment; its link stops", "admin"),
    ("GET", "/api/v1/sessions/{session_id}"): _op("A session with its waiting list and participants", "facilitator"),
    ("POST", "/api/v1/sessions/{session_id}/admit"): _op("Admit patients (all or none)", "facilitator",
                                                          _obj([], patient_ids=IDS, all={"type": "boolean"})),
    ("POST", "/api/v1/sessions/{session_id}/decline"): _op("Decline a waiting patient", "facilitator",
                                                            _obj(["patient_id"], patient_id=S, message=S)),
    ("POST", "/api/v1/sessions/{session_id}/remove"): _op("Remove a patient from the session", "facilitator",
                                                           _obj(["patient_id"], patient_id=S, reason=S)),
    ("POST", "/api/v1/sessions/{session_id}/send-back"): _op("Send a patient back to the waiting room",
                                                              "facilitator", PID),
    ("POST", "/api/v1/sessions/{session_id}/message"): _op("Message everyone waiting", "facilitator",
                                                            _obj(["text"], text=S)),
    ("POST", "/api/v1/sessions/{session_id}/mute"): _op("Mute a participant", "facilitator", PID),
    ("POST", "/api/v1/sessions/{session_id}/end"): _op("End the session; attendance is final", "facilitator"),
    ("GET", "/api/v1/sessions/{session_id}/events"): _op("Raw attendance events, in order", "facilitator"),
    ("GET", "/api/v1/sessions/{session_id}/attendance"): _op("Attendance records of a session (final: true once final)",
                                                              "facilitator"),
    ("POST", "/api/v1/sessions/{session_id}/attendance/{patient_id}/correction"): _op(
        "Correct a patient's attendance; a superseding billing record is queued", "admin",
        _obj(["intervals", "reason"], intervals={"type": "array", "items": {"type": "array", "items": S}}, reason=S)),
    ("GET", "/api/v1/attendance"): _op("Attendance records; query from, to (YYYY-MM-DD), group_id, patient_id",
                                       "admin"),
    ("GET", "/api/v1/attendance/weekly"): _op("Per patient per ISO week vs the program minimum, dropout risk",
                                              "admin"),
    ("GET", "/api/v1/attendance.csv"): _op("The attendance records as CSV, one row per patient per session",
                                           "admin"),
    ("GET", "/api/v1/billing/deliveries"): _op("Billing delivery log; query status=pending|delivered|failed",
                                               "admin"),
    ("POST", "/api/v1/billing/deliveries/{record_id}/replay"): _op("Replay a failed delivery", "admin"),
    ("GET", "/api/v1/ws"): _op("WebSocket upgrade: the realtime protocol (see the README)", None, ok=101,
                               errors=()),
    ("GET", "/j/{token}"): _op("The patient's join page (HTML)", None, errors=(404,)),
    ("GET", "/j/{token}/calendar.ics"): _page("The group's next meetings as an iCalendar feed", None, "text/calendar"),
    ("GET", "/"): _page("Redirects to the signed-in user's start page (or /login)", "staff"),
    ("GET", "/login"): _page("Staff sign-in page"),
    ("GET", "/console"): _page("The facilitator's console", "facilitator"),
    ("GET", "/admin"): _page("Admin: groups and patients", "admin"),
    ("GET", "/admin/groups/{group_id}"): _page("Admin: a group's enrolments, links and brand editor", "admin"),
    ("GET", "/admin/attendance"): _page("Admin: attendance minutes, weekly hours, dropout risk", "admin"),
    ("GET", "/admin/billing"): _page("Admin: billing deliveries and replay", "admin"),
}


def openapi_document(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in OPERATIONS.items():
        entry = dict(op)
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            entry["parameters"] = [{"name": p, "in": "path", "required": True, "schema": S} for p in params]
        paths.setdefault(path, {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "Porchlight", "version": __version__,
                 "description": "Staff API. State-changing requests need X-CSRF-Token (from login)."},
        "paths": paths,
        "components": {
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "porchlight_session"}},
            "schemas": {"Error": _obj(["error"], error={
                "type": "object", "required": ["code", "message"],
                "properties": {"code": S, "message": S, "request_id": S},  # request_id: as in X-Request-ID
            })},
        },
    }
