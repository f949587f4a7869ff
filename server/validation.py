"""Checking client JSON before anything acts on it. Every failure is a 400 `bad_request`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from server.errors import bad_request

T = TypeVar("T")
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def body_object(value: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request("the body must be a JSON object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise bad_request(f"unknown field(s): {', '.join(unknown)}")
    return value


def text(body: Mapping[str, Any], name: str, max_len: int, required: bool = True, min_len: int = 1) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"{name}: required")
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name}: must be a string")
    if not min_len <= len(value) <= max_len:
        raise bad_request(f"{name}: {min_len}-{max_len} characters")
    return value


def required_text(body: Mapping[str, Any], name: str, max_len: int) -> str:
    value = text(body, name, max_len)
    assert value is not None
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
