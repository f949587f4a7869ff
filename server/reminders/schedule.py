"""Which reminders are due at a moment. Pure: no I/O.

A meeting's reminder is due `minutes` before it starts. A round at `now` takes every meeting whose
due moment has passed by at most LATE_LIMIT and that has not started: a reminder more than 15
minutes late (a process that was down, Redis away) is not sent at all, as a late "starts in an
hour" would mislead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from server.clinic.calendar import Meeting, meetings_between

LATE_LIMIT = 15 * 60.0


@dataclass(frozen=True)
class DueMeeting:
    group: dict[str, Any]
    meeting: Meeting
    due_at: float  # seconds since the epoch

    @property
    def start_ms(self) -> int:
        return int(self.meeting.start.timestamp() * 1000)

    @property
    def local_date(self) -> date:
        return self.meeting.start.date()


def due_meetings(groups: Iterable[dict[str, Any]], now: float, minutes: int) -> list[DueMeeting]:
    """Meetings whose reminder is due at `now` (not more than LATE_LIMIT late, before the start)."""
    out = []
    lead = minutes * 60.0
    for group in groups:
        if not group.get("schedule"):
            continue
        zone = ZoneInfo(group.get("timezone") or "UTC")
        first = datetime.fromtimestamp(now, tz=zone).date() - timedelta(days=1)
        last = datetime.fromtimestamp(now + lead, tz=zone).date() + timedelta(days=1)
        for meeting in meetings_between(group, first, last):
            start = meeting.start.timestamp()
            due = start - lead
            if due <= now < start and now - due <= LATE_LIMIT:
                out.append(DueMeeting(group, meeting, due))
    return out


def enrolled_on(enrollment: dict[str, Any], day: date) -> bool:
    """Whether an enrolment covers a meeting on `day` (the group's local date)."""
    if enrollment.get("ended_at") is not None:
        return False
    if enrollment.get("starts_on") and date.fromisoformat(enrollment["starts_on"]) > day:
        return False
    return not (enrollment.get("ends_on") and date.fromisoformat(enrollment["ends_on"]) < day)


# Where clocks are read in 12 hours (ISO 3166 codes of a zone's country, from tzdata's zone.tab);
# elsewhere 24 hours. A zone shared by several countries follows its first.
TWELVE_HOUR_COUNTRIES = frozenset({"US", "CA", "AU", "NZ", "IN", "PH", "PK", "BD", "EG", "SA", "JO", "MY"})


def _zone_countries() -> dict[str, str]:
    table = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text()
    out = {}
    for line in table.splitlines():
        if line and not line.startswith("#"):
            country, _, zone = line.split("\t")[:3]
            out[zone] = country
    return out


_COUNTRY_OF_ZONE = _zone_countries()


def twelve_hour(timezone: str) -> bool:
    return _COUNTRY_OF_ZONE.get(timezone) in TWELVE_HOUR_COUNTRIES


def clock_time(moment: datetime, timezone: str) -> str:
    """"6:00 PM" where clocks read 12 hours, else "18:00" (the moment in the group's zone)."""
    if twelve_hour(timezone):
        return f"{moment.hour % 12 or 12}:{moment:%M} {'AM' if moment.hour < 12 else 'PM'}"
    return f"{moment:%H:%M}"


DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def spoken_time(moment: datetime, timezone: str) -> str:
    """"Monday, March 2 at 6:00 PM (America/Chicago)", or "... at 18:00 (Europe/Berlin)". The
    names are English whatever the process's C locale (strftime's %A would follow it)."""
    return (f"{DAYS[moment.weekday()]}, {MONTHS[moment.month - 1]} {moment.day} at "
            f"{clock_time(moment, timezone)} ({timezone})")
