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
from server.api import fhir
from server.api.schemas import (
    ACKNOWLEDGE,
    ADMIT,
    BOOL,
    BRAND_IN,
    CHAT_SWITCH,
    CORRECTION,
    DATE,
    DECLINE,
    ENROLLMENT_CREATE,
    FEEDBACK_IN,
    GROUP_CREATE,
    GROUP_PATCH,
    ID,
    LOGIN,
    MESSAGE,
    MUTE,
    PATIENT_CREATE,
    PATIENT_ID_ONLY,
    PATIENT_PATCH,
    REMOVE,
    SCHEMAS,
    SCREEN_SHARE,
    USER_CREATE,
    USER_PATCH,
    S,
    Schema,
    array,
    obj,
    ref,
)
from server.errors import CODES, ErrorCode

API = "/api/v1"
ERROR: Schema = {"$ref": "#/components/schemas/Error"}
CLINIC_BRAND: Schema = obj(["brand", "set"], brand={"type": "object"}, set=array(S))


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
ALERT_STATUS_Q = _query("status", {"type": "string", "enum": ["open", "acknowledged"]}, "only this status")
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
                          "responses": {"200": {"description": "ready", **_json(ref("Health"))},
                                        "503": {"description": "Redis is down", **_json(ref("Health"))}}},
    ("GET", "/readyz"): {"summary": "Readiness, the same as /healthz: 200 when Redis answers within 1 s",
                         "responses": {"200": {"description": "ready", **_json(ref("Health"))},
                                       "503": {"description": "Redis is down or the process is draining",
                                               **_json(ref("Health"))}}},
    ("GET", "/livez"): {"summary": "Liveness: 200 while the process runs; Redis is not asked",
                        "responses": {"200": {"description": "OK", **_json(ref("Health"))}}},
    ("GET", "/metrics"): {"summary": "Prometheus text metrics (exposition format 0.0.4)", "responses": {
        "200": {"description": "OK", "content": {"text/plain; version=0.0.4": {"schema": S}}}}},
    ("GET", f"{API}/openapi.json"): {"summary": "This document", "responses": {
        "200": {"description": "OK", **_json({"type": "object"})}}},
    ("POST", f"{API}/login"): _op(
        "Sign in; sets the session cookie, returns csrf_token. 403 csrf_failed from a foreign page (Origin, "
        "Sec-Fetch-Site); 429 rate_limited after failed attempts (with retry_after_seconds)", None, body=LOGIN,
        answer=ref("SignedIn"), errors=(401, 403, 429)),
    ("POST", f"{API}/logout"): _staff_change("End (revoke) the staff session", "staff",
                                             answer=obj(["ok"], ok={"const": True})),
    ("GET", f"{API}/me"): _op("The signed-in user and csrf_token", "staff", answer=ref("SignedIn")),
    ("GET", f"{API}/nodes"): _op("The processes of the deployment that heartbeat, with their load", "admin",
                                 answer=obj(["nodes"], nodes=array(ref("Node")))),
    ("POST", f"{API}/groups"): _staff_change("Create a group", "admin", body=GROUP_CREATE, ok=201,
                                             answer=ref("Group")),
    ("GET", f"{API}/groups"): _op("Groups visible to the caller, with open_session_id", "staff",
                                  answer=obj(["groups"], groups=array(ref("Group")))),
    ("GET", f"{API}/groups/{{group_id}}"): _op("One group", "staff", answer=ref("Group"), errors=(400, 403, 404)),
    ("PATCH", f"{API}/groups/{{group_id}}"): _staff_change("Change any creation field, e.g. brand", "admin",
                                                           body=GROUP_PATCH, answer=ref("Group"), errors=(404,)),
    ("GET", f"{API}/groups/{{group_id}}/enrollments"): _op(
        "The group's enrolments", "admin", answer=obj(["enrollments"], enrollments=array(ref("Enrollment"))),
        errors=(400, 404)),
    ("POST", f"{API}/groups/{{group_id}}/enrollments"): _staff_change(
        "Enrol a patient; returns join_url (409 already_enrolled)", "admin", body=ENROLLMENT_CREATE, ok=201,
        answer=ref("Enrollment"), errors=(404, 409)),
    ("POST", f"{API}/groups/{{group_id}}/sessions"): _staff_change(
        "Open a session (409 session_open, with session_id, if one is)", "facilitator", ok=201,
        answer=ref("Session"), errors=(400, 404, 409)),
    ("GET", f"{API}/clinic/brand"): _op(
        "The clinic-wide brand (defaults filled in; `set` names the fields the clinic set). A group's own brand "
        "fields win over it", "admin", answer=CLINIC_BRAND),
    ("PUT", f"{API}/clinic/brand"): _staff_change(
        "Replace the clinic-wide brand (audited); groups without their own fields show it at once", "admin",
        body=BRAND_IN, answer=CLINIC_BRAND),
    ("GET", f"{API}/users"): _op("Staff accounts, active and deactivated", "admin",
                                 answer=obj(["users"], users=array(ref("User")))),
    ("POST", f"{API}/users"): _staff_change(
        "Add a staff account (audited); 409 username_taken", "admin", body=USER_CREATE, ok=201, answer=ref("User"),
        errors=(409,)),
    ("PATCH", f"{API}/users/{{user_id}}"): _staff_change(
        "Change a staff account's name or NPI, or deactivate it (active: false ends its sign-ins at once; not "
        "one's own: 403) or reactivate it; audited", "admin", body=USER_PATCH, answer=ref("User"), errors=(404,)),
    ("GET", f"{API}/patients"): _op("All patients", "admin",
                                    answer=obj(["patients"], patients=array(ref("Patient")))),
    ("POST", f"{API}/patients"): _staff_change("Create a patient", "admin", body=PATIENT_CREATE, ok=201,
                                               answer=ref("Patient")),
    ("PATCH", f"{API}/patients/{{patient_id}}"): _staff_change(
        "Change a patient: name, external id, email, reminders (null clears external_id or email)", "admin",
        body=PATIENT_PATCH, answer=ref("Patient"), errors=(404,)),
    ("POST", f"{API}/enrollments/{{enrollment_id}}/rotate-link"): _staff_change(
        "New join link; the old stops at once", "admin", answer=obj(["join_url"], join_url=S),
        errors=(400, 404, 409)),
    ("POST", f"{API}/enrollments/{{enrollment_id}}/end"): _staff_change(
        "End the enrolment; its link stops (409 enrollment_ended)", "admin", answer=ref("Enrollment"),
        errors=(400, 404, 409)),
    ("GET", f"{API}/sessions/{{session_id}}"): _op("A session with its waiting list and participants", "facilitator",
                                                   answer=ref("Session"), errors=(400, 403, 404)),
    ("POST", f"{API}/sessions/{{session_id}}/admit"): _staff_change(
        "Admit patients (all or none; 409 not_waiting, capacity_reached)", "facilitator", body=ADMIT,
        answer=obj(["admitted"], admitted=array(ID)), errors=SESSION_ACTION),
    ("POST", f"{API}/sessions/{{session_id}}/decline"): _staff_change(
        "Decline a waiting patient", "facilitator", body=DECLINE, answer=obj(["declined"], declined=ID),
        errors=SESSION_ACTION),
    ("POST", f"{API}/sessions/{{session_id}}/remove"): _staff_change(
        "Remove a patient from the session", "facilitator", body=REMOVE, answer=obj(["removed"], removed=ID),
        errors=SESSION_ACTION),
    ("POST", f"{API}/sessions/{{session_id}}/send-back"): _staff_change(
        "Send a patient back to the waiting room", "facilitator", body=PATIENT_ID_ONLY,
        answer=obj(["sent_back"], sent_back=ID), errors=SESSION_ACTION),
    ("POST", f"{API}/sessions/{{session_id}}/message"): _staff_change(
        "Message everyone waiting, or one waiting patient (patient_id)", "facilitator", body=MESSAGE,
        answer=obj(["delivered"], delivered={"type": "integer", "description": "how many received it"}),
        errors=SESSION_ACTION),
    ("POST", f"{API}/sessions/{{session_id}}/mute"): _staff_change(
        "Mute a participant, or every admitted patient (all: true)", "facilitator", body=MUTE,
        answer=obj(["muted"], muted={"oneOf": [ID, array(ID)]}), errors=SESSION_ACTION),
    ("POST", f"{API}/sessions/{{session_id}}/chat"): _staff_change(
        "Turn group chat on or off (messages to the staff always go)", "facilitator", body=CHAT_SWITCH,
        answer=obj(["chat_enabled"], chat_enabled={"type": "boolean"}), errors=SESSION_ACTION),
    ("POST", f"{API}/sessions/{{session_id}}/screen-share"): _staff_change(
        "Let a patient share their screen, or stop them (409 not_in_session)", "facilitator", body=SCREEN_SHARE,
        answer=obj(["patient_id", "allowed"], patient_id=ID, allowed=BOOL), errors=SESSION_ACTION),
    ("POST", f"{API}/sessions/{{session_id}}/end"): _staff_change(
        "End the session; attendance is final", "facilitator", answer=ref("Session"), errors=SESSION_ACTION),
    ("GET", f"{API}/sessions/{{session_id}}/events"): _op(
        "Raw attendance events, in order", "facilitator",
        answer=obj(["events"], events=array(obj(["type"], type=S))), errors=(400, 403, 404)),
    ("GET", f"{API}/sessions/{{session_id}}/attendance"): _op(
        "Attendance records of a session (final: true once final)", "facilitator",
        answer=obj(["final", "records"], final=BOOL, records=array(ref("AttendanceRecord")),
                   names={"type": "object", "additionalProperties": {"type": "string"},
                          "description": "display name by patient id"}),
        errors=(400, 403, 404)),
    ("POST", f"{API}/sessions/{{session_id}}/attendance/{{patient_id}}/correction"): _staff_change(
        "Correct a patient's attendance; a superseding billing record is queued (409 not_final)", "admin",
        body=CORRECTION, answer=ref("AttendanceRecord"), errors=(404, 409)),
    ("GET", f"{API}/attendance"): _op("Attendance records (each pull is audited as an export)", "admin",
                                      query=(FROM, TO, GROUP_Q, PATIENT_Q),
                                      answer=obj(["records"], records=array(ref("AttendanceRecord")))),
    ("GET", f"{API}/attendance/weekly"): _op("Per patient per ISO week vs the program minimum, dropout risk", "admin",
                                             query=(FROM, TO, GROUP_Q),
                                             answer=obj(["weeks"], weeks=array(ref("WeeklyTotal")))),
    ("GET", f"{API}/attendance.csv"): _op(
        "The attendance records as CSV, one row per patient per session (Content-Disposition: attachment); "
        "after the record's columns: short_join, display_name, external_id, timezone, first_join_local, "
        "last_leave_local",
        "admin", query=(FROM, TO, GROUP_Q, PATIENT_Q), ok_content={"text/csv": {"schema": S}}),
    ("GET", f"{API}/billing/deliveries"): _op("Billing delivery log", "admin", query=(STATUS_Q,),
                                              answer=obj(["deliveries"], deliveries=array(ref("Delivery")))),
    ("POST", f"{API}/billing/deliveries/{{record_id}}/replay"): _staff_change(
        "Replay a failed delivery (409 not_failed otherwise)", "admin", answer=ref("Delivery"),
        errors=(400, 404, 409)),
    ("GET", f"{API}/patients/{{patient_id}}/measures"): _op(
        "A patient's answered questionnaires, oldest first (staff of one of the patient's groups; audited)", "staff",
        answer=obj(["measures"], measures=array(ref("Measure"))), errors=(400, 403, 404)),
    ("GET", f"{API}/alerts"): _op("Safety alerts of the caller's groups, newest first", "staff",
                                  query=(ALERT_STATUS_Q,), answer=obj(["alerts"], alerts=array(ref("Alert")))),
    ("POST", f"{API}/alerts/{{alert_id}}/acknowledge"): _staff_change(
        "Acknowledge a safety alert (who and when are recorded; 409 already_acknowledged)", "staff",
        body=ACKNOWLEDGE, answer=ref("Alert"), errors=(403, 404, 409)),
    ("GET", f"{API}/feedback"): _op("Patients' feedback on sessions, by when it was given (UTC days)", "admin",
                                    query=(FROM, TO, GROUP_Q),
                                    answer=obj(["feedback"], feedback=array(ref("Feedback")))),
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
    ("POST", "/j/{token}/feedback"): {
        "summary": "The patient's feedback on a session they attended, from the page of their link (once, up to "
                   "24 h after the end; the link is the credential)",
        "requestBody": {"required": True, **_json(FEEDBACK_IN)},
        "responses": {"200": {"description": "saved", **_json(obj(["type", "session_id"], type={"const":
                                                                   "feedback_saved"}, session_id=ID))},
                      **{str(status): {"$ref": f"#/components/responses/{_STATUS_RESPONSE[status]}"}
                         for status in (400, 403, 404, 409, 413, 503)}}},
    ("GET", "/unsubscribe/{token}"): {"summary": "A reminder's unsubscribe link: asks to stop reminders", "responses": {
        "200": {"description": "OK", "content": {"text/html": {"schema": S}}},
        "404": {"description": "a forged link or an unknown patient", "content": {"text/html": {"schema": S}}}}},
    ("POST", "/unsubscribe/{token}"): {"summary": "Stop the patient's reminders (the page's button, or RFC 8058 "
                                                  "one-click); no sign-in: the signed link is the authority",
                                       "responses": {
        "200": {"description": "reminders are off", "content": {"text/html": {"schema": S}}},
        "404": {"description": "a forged link or an unknown patient", "content": {"text/html": {"schema": S}}}}},
    ("GET", "/"): _page("Redirects to the signed-in user's start page (or /login)", "staff"),
    ("GET", "/login"): _page("Staff sign-in page", query=(NEXT_Q,)),
    ("GET", "/console"): _page("The facilitator's console", "facilitator"),
    ("GET", "/console/attendance"): _page("A facilitator's attendance: the groups they facilitate, one at a time",
                                          "facilitator", query=(FROM, TO, GROUP_Q, PATIENT_Q)),
    ("GET", "/admin"): _page("Admin: groups and patients", "admin"),
    ("GET", "/admin/groups/{group_id}"): _page("Admin: a group's details, enrolments, links and brand", "admin",
                                               by_id=True),
    ("GET", "/admin/brand"): _page("Admin: the clinic-wide brand, with a preview", "admin"),
    ("GET", "/admin/attendance"): _page("Admin: attendance minutes, weekly hours, dropout risk", "admin",
                                        query=(FROM, TO, GROUP_Q, PATIENT_Q)),
    ("GET", "/admin/billing"): _page("Admin: billing deliveries and replay", "admin", query=(STATUS_Q,)),
    ("GET", "/admin/feedback"): _page("Admin: patients' feedback, averages per group and facilitator", "admin",
                                      query=(FROM, TO)),
    ("GET", "/patients/{patient_id}"): _page("A patient's questionnaire scores over time, flags and safety alerts "
                                             "(staff of one of the patient's groups)", "facilitator", by_id=True),
}

OPERATIONS.update(fhir.OPERATIONS)  # FHIR searches: their own media type and error shape

# A join token is not an id, nor a FHIR id (`.` for `_`); every other path parameter is.
PATH_PARAMS: dict[str, Schema] = {"token": S, "fhir_id": fhir.FHIR_ID}


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
