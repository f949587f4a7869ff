"""What the server writes to its logs, and what it never writes.

Join-link tokens (`/j/<token>`, `token` fields), session cookies, CSRF tokens, passwords,
TURN credentials and webhook secrets are bearer secrets. `Redact` removes them from every record
of the loggers that can print a request line, headers or a request's data (aiohttp's own and
ours), before any handler formats it, so a malformed request echoed by aiohttp's error log is
safe too.

Every HTTP request has an id: the client's `X-Request-ID` when it is a sane one (at most 64 of
`[A-Za-z0-9._-]`), else a new one. It is sent back on every response, carried in JSON error
bodies (`error.request_id`) and stamped on the log records written while the request runs.
`PORCHLIGHT_LOG_FORMAT=json` writes one JSON object a line instead of text.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from server.auth.sessions import COOKIE_NAME

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID = web.RequestKey("request_id", str)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"

# The loggers that can print a request line, headers or request data. Filters on a logger act
# on the records it creates, whatever handler (ours, a test's, an operator's) prints them.
REDACTED_LOGGERS = (
    "aiohttp.access", "aiohttp.server", "aiohttp.web", "aiohttp.websocket", "aiohttp.client",
    "aiohttp.internal", "asyncio", "porchlight",
)
# aioice logs every candidate pair, patients' IP addresses included, at INFO.
QUIET_LOGGERS = ("aioice", "aiortc")

_SECRETS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"/j/[^/\s?#\"'\\]+"), "/j/[redacted]"),
    (re.compile(r"/unsubscribe/[^/\s?#\"'\\]+"), "/unsubscribe/[redacted]"),
    (re.compile(r"(?i)\b(smtps?://[^:/@\s]*:)[^@\s]+@"), r"\1[redacted]@"),
    (re.compile(r"(?i)\b((?:set-)?cookie|authorization|x-csrf-token)([ \t]*[:=][ \t]*)[^\r\n\"'\\]+"),
     r"\1\2[redacted]"),
    (re.compile(rf"(?i)\b({re.escape(COOKIE_NAME)}=)[^;\s\"'\\]+"), r"\1[redacted]"),
    (re.compile(r"(?i)([\"']?\b[\w-]*(?:token|password|secret|credential)[\"']?[ \t]*[:=][ \t]*[\"']?)"
                r"[^\"'&\s,;}\[\]\\]+"),
     r"\1[redacted]"),
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "whsec_[redacted]"),
)
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_current_request_id: ContextVar[str | None] = ContextVar("porchlight_request_id", default=None)


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class Redact(logging.Filter):
    """Rewrites a record's message, traceback and stack without the secrets `redact` knows."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)  # exception texts quote input
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class StampRequestId(logging.Filter):
    """Gives a record the id of the request being handled when it was written ("-" outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _current_request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id, and the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        entry: dict[str, object] = {
            "time": at.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "-")
        if request_id != "-":
            entry["request_id"] = request_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry)


def _add_once(target: logging.Logger | logging.Handler, kind: type[logging.Filter]) -> None:
    if not any(isinstance(f, kind) for f in target.filters):
        target.addFilter(kind())


def install() -> None:
    """Redaction and request ids on the loggers that need them; aioice and aiortc quieter (unless
    already set). Idempotent: create_app calls it, and so does `configure`."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        _add_once(logger, Redact)
        _add_once(logger, StampRequestId)
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def configure(level: str, log_format: str) -> None:
    """The process's logging (the CLI's): one handler on stderr, text or JSON lines. The handler
    filters too, so records of other loggers (server.*, libraries) are redacted and stamped."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(Redact())
    handler.addFilter(StampRequestId())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(level)
    install()


def request_id_for(incoming: str | None) -> str:
    """The client's id when it is safe to echo and log, else a new one."""
    if incoming is not None and _VALID_REQUEST_ID.match(incoming):
        return incoming
    return secrets.token_hex(8)


@web.middleware
async def request_ids(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Outermost: the id exists before anything can log or fail (a WebSocket keeps it while open)."""
    request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID] = request_id
    token = _current_request_id.set(request_id)
    try:
        return await handler(request)
    finally:
        _current_request_id.reset(token)


async def answer_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response (WebSocket upgrades and files too) names its request."""
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id


class AccessLogger(AbstractAccessLogger):
    """One line per request: address, method, path without the query string (it may hold
    anything), status, duration and request id. The path's tokens go by the Redact filter."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %s %.3fs', request.remote, request.method, request.path, response.status, time,
                         extra={"request_id": request.get(REQUEST_ID, "-")})

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
