"""Checking client JSON before anything acts on it. Every failure is a 400 `bad_request`.

`parse_json` is the one reader of client JSON (HTTP bodies and WebSocket frames): UTF-8, at
most MAX_JSON_DEPTH deep, and every string encodable as UTF-8 (no lone surrogates, as I-JSON,
RFC 7493, requires), so nothing downstream (Redis, templates, logs) meets text it cannot write.
`text` then refuses control characters, which no name or message needs (newlines excepted
where the field is multi-line).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from server.errors import bad_request

T = TypeVar("T")
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_JSON_DEPTH = 32
# A JSON string (skipped whole, so brackets inside it do not count) or a bracket.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def parse_json(raw: bytes | str) -> Any:
    """Client JSON, or bad_request. Depth is checked before parsing: json.loads recurses."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request("the body is not valid UTF-8") from None
    if _deeper_than(raw, MAX_JSON_DEPTH):
        raise bad_request(f"JSON may be nested at most {MAX_JSON_DEPTH} deep")
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except ValueError:
        raise bad_request("malformed JSON") from None
    where = _unencodable(value, "")
    if where is not None:
        raise bad_request(f"{where}: not valid Unicode text")
    return value


def _deeper_than(raw: str, limit: int) -> bool:
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(raw):
        mark = raw[match.start()]
        if mark in "[{":
            depth += 1
            if depth > limit:
                return True
        elif mark in "]}":
            depth -= 1
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python accepts them, JSON does not


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unencodable(value: Any, path: str) -> str | None:
    """The path of the first string (or key) that is not valid Unicode, else None."""
    if isinstance(value, str):
        return None if _encodable(value) else path or "body"
    if isinstance(value, dict):
        for key, item in value.items():
            if not _encodable(key):
                return f"{path or 'body'} (a key)"
            if (where := _unencodable(item, f"{path}.{key[:64]}" if path else key[:64])) is not None:
                return where
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if (where := _unencodable(item, f"{path or 'body'}[{i}]")) is not None:
                return where
    return None


def body_object(value: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request("the body must be a JSON object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise bad_request(f"unknown field(s): {', '.join(unknown)}")
    return value


def text(body: Mapping[str, Any], name: str, max_len: int, required: bool = True, min_len: int = 1,
         multiline: bool = False) -> str | None:
    """A string field; `multiline` lets it hold newlines (never other control characters)."""
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"{name}: required")
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name}: must be a string")
    if not min_len <= len(value) <= max_len:
        raise bad_request(f"{name}: {min_len}-{max_len} characters")
    if (_CONTROL_BUT_NEWLINE if multiline else _CONTROL).search(value):
        allowed = " other than newlines" if multiline else ""
        raise bad_request(f"{name}: must not contain control characters{allowed}")
    return value


def required_text(body: Mapping[str, Any], name: str, max_len: int, multiline: bool = False) -> str:
    value = text(body, name, max_len, multiline=multiline)
    assert value is not None
    return value


def password(body: Mapping[str, Any], name: str, max_len: int) -> str:
    """A password: any characters (it is only hashed, never shown), so one set with a tab in
    it still signs in; JSON reading already refused what cannot be encoded."""
    value = body.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= max_len:
        raise bad_request(f"{name}: required, 1-{max_len} characters")
    return value


def integer(body: Mapping[str, Any], name: str, low: int, high: int, required: bool = False) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"{name}: required")
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise bad_request(f"{name}: a whole number from {low} to {high}")
    return value


def boolean(body: Mapping[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bad_request(f"{name}: must be true or false")
    return value


def an_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise bad_request(f"{name}: must be an id")
    return value


def id_list(body: Mapping[str, Any], name: str, max_items: int = 500) -> list[str]:
    value = body.get(name)
    if not isinstance(value, list) or not 0 < len(value) <= max_items:
        raise bad_request(f"{name}: a list of 1-{max_items} ids")
    ids = [an_id(v, name) for v in value]
    return list(dict.fromkeys(ids))


def iso_date(body: Mapping[str, Any], name: str) -> date | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name}: a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise bad_request(f"{name}: a date YYYY-MM-DD") from None


_ZONES: set[str] | None = None


def timezone(value: Any, name: str = "timezone") -> str:
    global _ZONES
    if _ZONES is None:
        _ZONES = available_timezones()
    if not isinstance(value, str) or value not in _ZONES:
        raise bad_request(f"{name}: an IANA timezone such as America/Chicago")
    try:
        ZoneInfo(value)
    except ZoneInfoNotFoundError:
        raise bad_request(f"{name}: unknown timezone") from None
    return value
