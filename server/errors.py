"""The one error model: the shape {"error": {"code": "snake_case", "message": "...", "request_id": "...", ...}},
and every code the server sends, with its HTTP status and what it means.

`ErrorCode` is the list; `CODES` says, for each, where it is sent (HTTP answers, WebSocket
`error` frames, the command line) and why. The OpenAPI document's Error schema enumerates the
HTTP codes, and tests/test_error_codes.py checks the list against CONTRACT.md and the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Flag, StrEnum, auto
from typing import Any


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNKNOWN_USER = "unknown_user"
    UNAUTHORIZED = "unauthorized"
    INVALID_CREDENTIALS = "invalid_credentials"
    CSRF_FAILED = "csrf_failed"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    ALREADY_ENROLLED = "already_enrolled"
    ENROLLMENT_ENDED = "enrollment_ended"
    SESSION_OPEN = "session_open"
    SESSION_NOT_OPEN = "session_not_open"
    SESSION_ENDED = "session_ended"
    NOT_WAITING = "not_waiting"
    NOT_IN_SESSION = "not_in_session"
    CAPACITY_REACHED = "capacity_reached"
    NOT_FINAL = "not_final"
    NOT_FAILED = "not_failed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    HTTP_ERROR = "http_error"
    INTERNAL_ERROR = "internal_error"
    UNAVAILABLE = "unavailable"
    INVALID_TOKEN = "invalid_token"
    REPLACED = "replaced"
    HELLO_TIMEOUT = "hello_timeout"
    NOT_ADMITTED = "not_admitted"
    OUT_OF_TURN = "out_of_turn"
    BAD_SDP = "bad_sdp"
    MEDIA_UNAVAILABLE = "media_unavailable"
    CHAT_DISABLED = "chat_disabled"
    NOT_ALLOWED = "not_allowed"
    USERNAME_TAKEN = "username_taken"
    ALREADY_ANSWERED = "already_answered"
    ALREADY_ACKNOWLEDGED = "already_acknowledged"


class Channel(Flag):
    HTTP = auto()  # an HTTP answer with the JSON error body
    WEBSOCKET = auto()  # an `error` frame {"type": "error", "code", "message"}
    CLI = auto()  # printed by a `porchlight` command


@dataclass(frozen=True)
class Meaning:
    status: int | None  # the HTTP status; None for codes never sent over HTTP
    channel: Channel
    meaning: str
    sent_by: str  # the package that raises it (its owners change it)
    sent: bool = True  # False: reserved by CONTRACT.md for a feature not built yet


HTTP, WS, BOTH = Channel.HTTP, Channel.WEBSOCKET, Channel.HTTP | Channel.WEBSOCKET

CODES: dict[ErrorCode, Meaning] = {
    ErrorCode.BAD_REQUEST: Meaning(400, BOTH, "malformed or invalid input; the message names the field", "validation"),
    ErrorCode.UNKNOWN_USER: Meaning(400, HTTP, "facilitator_ids names someone who is not a staff user", "clinic"),
    ErrorCode.UNAUTHORIZED: Meaning(401, BOTH, "no valid staff session: sign in first", "api"),
    ErrorCode.INVALID_CREDENTIALS: Meaning(401, HTTP, "wrong username or password", "api"),
    ErrorCode.CSRF_FAILED: Meaning(403, HTTP, "missing or wrong X-CSRF-Token, or a foreign Origin", "api"),
    ErrorCode.FORBIDDEN: Meaning(403, BOTH, "the account's role or groups do not allow this", "api"),
    ErrorCode.NOT_FOUND: Meaning(404, BOTH, "no such resource, or no such route", "api"),
    ErrorCode.METHOD_NOT_ALLOWED: Meaning(405, HTTP, "the route exists but not with this method (see Allow)", "app"),
    ErrorCode.ALREADY_ENROLLED: Meaning(409, HTTP, "the patient already has an active enrolment in the group",
                                        "clinic"),
    ErrorCode.ENROLLMENT_ENDED: Meaning(409, HTTP, "the enrolment has ended", "clinic"),
    ErrorCode.SESSION_OPEN: Meaning(409, HTTP, "a session of the group is already open (session_id names it)",
                                    "lobby"),
    ErrorCode.SESSION_NOT_OPEN: Meaning(None, WS, "a staff hello named a session that is not open", "lobby"),
    ErrorCode.SESSION_ENDED: Meaning(409, BOTH, "the session has ended", "lobby"),
    ErrorCode.NOT_WAITING: Meaning(409, HTTP, "a patient to admit or decline is not in the waiting room", "lobby"),
    ErrorCode.NOT_IN_SESSION: Meaning(409, HTTP, "the patient is not in the session", "lobby"),
    ErrorCode.CAPACITY_REACHED: Meaning(409, HTTP, "admitting would exceed the group's capacity", "lobby"),
    ErrorCode.NOT_FINAL: Meaning(409, HTTP, "the session's attendance is not final yet", "attendance"),
    ErrorCode.NOT_FAILED: Meaning(409, HTTP, "only a failed billing delivery can be replayed", "api"),
    ErrorCode.PAYLOAD_TOO_LARGE: Meaning(413, HTTP, "the body is over PORCHLIGHT_MAX_JSON_BYTES", "api"),
    ErrorCode.RATE_LIMITED: Meaning(429, BOTH, "too many failed sign-ins, check-ins or frames; try later", "api"),
    ErrorCode.TOO_MANY_CONNECTIONS: Meaning(429, HTTP, "too many WebSockets are waiting to say hello", "realtime"),
    ErrorCode.HTTP_ERROR: Meaning(400, HTTP, "a refusal by the HTTP layer, e.g. an unreadable request (its status "
                                             "is the answer's)", "app"),
    ErrorCode.INTERNAL_ERROR: Meaning(500, HTTP, "a bug: quote request_id to the operator", "app"),
    ErrorCode.UNAVAILABLE: Meaning(503, BOTH, "Redis is unreachable; try again", "app"),
    ErrorCode.INVALID_TOKEN: Meaning(None, WS, "a forged, expired or revoked join link (closes with 4401)",
                                     "realtime"),
    ErrorCode.REPLACED: Meaning(None, WS, "the same patient connected again (closes with 4409)", "lobby"),
    ErrorCode.HELLO_TIMEOUT: Meaning(None, WS, "no hello within the deadline (closes with 4400)", "realtime"),
    ErrorCode.NOT_ADMITTED: Meaning(None, WS, "media or the roster before admission", "media"),
    ErrorCode.OUT_OF_TURN: Meaning(None, WS, "an offer or answer the signalling state does not expect", "media"),
    ErrorCode.BAD_SDP: Meaning(None, WS, "SDP that cannot be read or used", "media"),
    ErrorCode.MEDIA_UNAVAILABLE: Meaning(None, WS, "media is not available for this session", "realtime"),
    ErrorCode.CHAT_DISABLED: Meaning(None, WS, "a group chat message while chat is off", "realtime",
                                     sent=True),
    ErrorCode.NOT_ALLOWED: Meaning(None, WS, "a patient's screen share without permission (contract v1.1)",
                                   "media"),
    ErrorCode.USERNAME_TAKEN: Meaning(409, HTTP | Channel.CLI, "a new staff account's username is in use "
                                                               "(POST /users, `porchlight user add`)", "auth"),
    ErrorCode.ALREADY_ANSWERED: Meaning(409, BOTH, "a questionnaire already answered, skipped or expired, or a "
                                                   "session's feedback already given", "measures"),
    ErrorCode.ALREADY_ACKNOWLEDGED: Meaning(409, HTTP, "the safety alert has already been acknowledged", "measures"),
}


def http_codes() -> list[ErrorCode]:
    """The codes an HTTP answer can carry, in the list's order."""
    return [code for code, m in CODES.items() if Channel.HTTP in m.channel]


def websocket_codes() -> list[ErrorCode]:
    return [code for code, m in CODES.items() if Channel.WEBSOCKET in m.channel]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        error = {"code": str(self.code), "message": self.message, **self.extra}
        if request_id is not None:
            error["request_id"] = request_id  # what to quote to the operator, who finds it in the logs
        return {"error": error}


def bad_request(message: str, code: str = ErrorCode.BAD_REQUEST) -> ApiError:
    return ApiError(400, code, message)


def not_found(what: str) -> ApiError:
    return ApiError(404, ErrorCode.NOT_FOUND, f"{what} not found")


def conflict(code: str, message: str, **extra: Any) -> ApiError:
    return ApiError(409, code, message, **extra)


def forbidden(message: str = "not allowed for this account") -> ApiError:
    return ApiError(403, ErrorCode.FORBIDDEN, message)
