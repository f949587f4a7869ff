"""Reading FHIR search parameters: ids in either spelling, dates with their prefixes. Pure.

A parameter the endpoint does not know is refused (as a FHIR server does under
`Prefer: handling=strict`): a typo must not silently widen a search of patient records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from server.fhir.resources import porchlight_id

_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DATE = re.compile(r"(eq|ge|gt|le|lt)?(\d{4}-\d{2}-\d{2})")
EARLIEST = date(1970, 1, 1)


class SearchError(ValueError):
    """A search parameter that cannot be used; the message says which and why."""

    def __init__(self, message: str, issue: str = "invalid") -> None:
        super().__init__(message)
        self.issue = issue  # the OperationOutcome issue type


def only(params: Iterable[str], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise SearchError(f"unknown search parameter {unknown[0]!r} (supported: {', '.join(sorted(allowed))})",
                          "not-supported")


def reference_id(value: str, name: str, resource: str | None = None) -> str:
    """A Porchlight id from `pat.Ab3`, `pat_Ab3` or `Patient/pat.Ab3`."""
    if resource is not None:
        value = value.removeprefix(f"{resource}/")
    if not _ID.fullmatch(value):
        raise SearchError(f"{name}: an id")
    return porchlight_id(value)


@dataclass(frozen=True)
class DateRange:
    first: date
    last: date

    def __contains__(self, day: object) -> bool:
        return isinstance(day, str) and self.first.isoformat() <= day <= self.last.isoformat()


def date_range(values: list[str], today: date) -> DateRange:
    """`date=ge2026-01-05&date=lt2026-02-01` as inclusive days; no value: everything until tomorrow."""
    first, last = EARLIEST, today + timedelta(days=1)
    for value in values:
        match = _DATE.fullmatch(value)
        if match is None:
            raise SearchError("date: [eq|ge|gt|le|lt]YYYY-MM-DD, e.g. ge2026-01-05")
        try:
            day = date.fromisoformat(match.group(2))
        except ValueError:
            raise SearchError(f"date: {match.group(2)} is not a date") from None
        prefix = match.group(1) or "eq"
        if prefix in ("eq", "ge"):
            first = max(first, day)
        if prefix in ("eq", "le"):
            last = min(last, day)
        if prefix == "gt":
            first = max(first, day + timedelta(days=1))
        if prefix == "lt":
            last = min(last, day - timedelta(days=1))
    return DateRange(first, last)
