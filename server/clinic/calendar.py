"""A group's schedule as meetings: today's, the next few weeks', and as an iCalendar feed.

The feed lists the next `FEED_WEEKS` weeks of meetings as separate events in UTC rather than
one weekly RRULE with a TZID: RFC 5545 requires a VTIMEZONE component for every TZID used,
and the standard library cannot export one. Occurrences are computed in the group's timezone
(so 18:00 stays 18:00 across a DST change) and written in UTC, which every calendar reads the
same way. Each occurrence has a stable UID, so a calendar that refreshes the feed (we ask for
daily) updates or drops meetings when the schedule changes instead of duplicating them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

FEED_WEEKS = 8
REMIND_MINUTES = 15
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Meeting:
    start: datetime  # aware, in the group's timezone
    minutes: int

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)


def _zone(group: dict[str, Any]) -> ZoneInfo:
    return ZoneInfo(group.get("timezone") or "UTC")


def meetings_between(group: dict[str, Any], first: date, last: date) -> list[Meeting]:
    """Scheduled meetings whose local start date is within [first, last], in order."""
    zone = _zone(group)
    out = []
    day = first
    while day <= last:
        for slot in group.get("schedule") or []:
            if slot["weekday"] != day.weekday():
                continue
            hour, minute = map(int, slot["start"].split(":"))
            # fold=0 and a round trip through UTC give a real instant even in a DST gap.
            local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
            out.append(Meeting(local.astimezone(UTC).astimezone(zone), int(slot["minutes"])))
        day += timedelta(days=1)
    return sorted(out, key=lambda m: m.start)


def local_today(group: dict[str, Any], now: float) -> date:
    return datetime.fromtimestamp(now, tz=_zone(group)).date()


def meetings_today(group: dict[str, Any], now: float) -> list[Meeting]:
    today = local_today(group, now)
    return meetings_between(group, today, today)


# The names people use for the zones clinics are in; any other reads as its city ("Berlin time").
PLAIN_ZONES = {
    "America/New_York": "Eastern Time", "America/Detroit": "Eastern Time", "America/Chicago": "Central Time",
    "America/Denver": "Mountain Time", "America/Boise": "Mountain Time", "America/Phoenix": "Arizona Time",
    "America/Los_Angeles": "Pacific Time", "America/Anchorage": "Alaska Time", "Pacific/Honolulu": "Hawaii Time",
    "America/Puerto_Rico": "Atlantic Time", "UTC": "UTC", "Etc/UTC": "UTC",
}


def zone_name(timezone: str | None) -> str:
    """"America/Chicago" -> "Central Time"; "Europe/Berlin" -> "Berlin time"."""
    zone = timezone or "UTC"
    return PLAIN_ZONES.get(zone) or f"{zone.rsplit('/', 1)[-1].replace('_', ' ')} time"


def clock_12(hour: int, minute: int) -> tuple[str, str]:
    """(18, 0) -> ("6:00", "PM")."""
    return f"{hour % 12 or 12}:{minute:02d}", "AM" if hour < 12 else "PM"


def describe_schedule(group: dict[str, Any]) -> str:
    """Plain words: "Mon, Wed, Thu 6:00–9:00 PM (Central Time)"; "" without a schedule."""
    slots = group.get("schedule") or []
    if not slots:
        return ""
    by_time: dict[tuple[str, int], list[int]] = {}
    for slot in slots:
        by_time.setdefault((slot["start"], int(slot["minutes"])), []).append(slot["weekday"])
    parts = []
    for (start, minutes), days in sorted(by_time.items(), key=lambda kv: min(kv[1])):
        hour, minute = map(int, start.split(":"))
        end = datetime(2000, 1, 1, hour, minute) + timedelta(minutes=minutes)
        (begin_at, begin_half), (end_at, end_half) = clock_12(hour, minute), clock_12(end.hour, end.minute)
        span = f"{begin_at}–{end_at} {end_half}" if begin_half == end_half else \
            f"{begin_at} {begin_half}–{end_at} {end_half}"
        parts.append(f"{', '.join(WEEKDAYS[d] for d in sorted(days))} {span}")
    return "; ".join(parts) + f" ({zone_name(group.get('timezone'))})"


def _escape(text: str) -> str:
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))


def _fold(line: str) -> str:
    """RFC 5545 3.1: lines longer than 75 octets continue on the next line after a space."""
    raw = line.encode()
    if len(raw) <= 75:
        return line
    pieces, start, limit = [], 0, 75
    while start < len(raw):
        end = min(start + limit, len(raw))
        while end < len(raw) and (raw[end] & 0xC0) == 0x80:  # never split a UTF-8 character
            end -= 1
        pieces.append(raw[start:end].decode())
        start, limit = end, 74  # continuation lines spend one octet on the leading space
    return "\r\n ".join(pieces)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def ics_feed(group: dict[str, Any], brand: dict[str, str], join_url: str, now: float, host: str,
             weeks: int = FEED_WEEKS) -> str:
    """The group's next `weeks` weeks of meetings as an iCalendar object (CRLF line ends)."""
    today = local_today(group, now)
    stamp = _utc(datetime.fromtimestamp(now, tz=UTC))
    name = group.get("name") or "Group session"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Porchlight//Group schedule//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{_escape(name)}",
        "REFRESH-INTERVAL;VALUE=DURATION:P1D",
        "X-PUBLISHED-TTL:P1D",
    ]
    brand_name = brand.get("name") or "Porchlight"
    description = f"Join from your personal link: {join_url}"
    if brand.get("support_phone"):
        description += f"\nTrouble joining? Call {brand['support_phone']}."
    for meeting in meetings_between(group, today, today + timedelta(weeks=weeks) - timedelta(days=1)):
        if meeting.end.timestamp() <= now:
            continue
        lines += [
            "BEGIN:VEVENT",
            f"UID:{group['id']}-{meeting.start.strftime('%Y%m%dT%H%M')}@{host}",
            f"DTSTAMP:{stamp}",
            f"DTSTART:{_utc(meeting.start)}",
            f"DTEND:{_utc(meeting.end)}",
            f"SUMMARY:{_escape(f'{name} ({brand_name})')}",
            f"DESCRIPTION:{_escape(description)}",
            f"URL:{join_url}",
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            f"DESCRIPTION:{_escape(name)} starts in {REMIND_MINUTES} minutes",
            f"TRIGGER:-PT{REMIND_MINUTES}M",
            "END:VALARM",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "".join(_fold(line) + "\r\n" for line in lines)
