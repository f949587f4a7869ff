"""Attendance rules: the recorded events of one session -> presence intervals -> seconds.

Pure: no I/O, no clock. Times are integer milliseconds since the epoch (UTC); the events are
the ones `server.lobby.machine` records, in any order, possibly duplicated or late.

Order
    Exact duplicates are dropped (the first copy is kept), then events are sorted by `at`, and
    at the same ms by `seq`, the session's own numbering of the machine's events (so two events
    that read alike in one ms are two, and keep their order however they arrive; events without
    a `seq`, such as media reports, come first and otherwise keep the order they were recorded
    in). The event list of a session is append-only and every event of one patient is recorded
    at or after the previous one, so that order is the order in which things happened. Hence:
      - a leave and a rejoin at the same ms (left, then joined) leave no gap: presence that
        closes and opens at the same ms is one stretch;
      - a join and a drop at the same ms (joined, then left: the machine stamps a drop at
        max(last_heard, since), the join time when a connection died before its first
        heartbeat) leave an empty stretch, which is dropped;
      - send-back and re-admission at the same ms (left, waiting, admitted, joined) leave no gap.
    Events that arrive late (a drop recorded after later events, with its earlier `at`) take
    their place by `at`.

Presence and waiting (each an open/closed state per patient, events applied one by one)
    presence opens at "joined"; it closes at "left" from the session (any reason; "from" is
        "session" or absent, as on "removed" and "sent_back" lefts).
    waiting opens at "waiting"; it closes at "admitted", "declined" and "left" with
        from == "waiting" (any reason, session_end included).
    "removed" (of a patient who had already dropped) and unknown types change neither; strays
    (a left with nothing open, a joined while present: a second tab) change nothing.
    A stretch still open at the end of the events closes at window_end.

Clipping and merging
    Presence stretches are clipped to [window_start, window_end], empty ones dropped, and
    overlapping or touching ones merged; the result is sorted. Waiting stretches are clipped
    and merged the same way, and then any presence is cut out of them: a moment counts as
    attended or as waited, never both (this only matters for inconsistent event streams).

Rounding
    Every total is computed on the millisecond intervals and rounded once, down to whole
    seconds: seconds = floor(total_ms / 1000). Stretches are never rounded one by one, so two
    stretches of 1.5 s give 3 s, not 2 s. Minutes (see `attended_minutes`) are
    floor(attended_seconds / 60).

Media
    The media state at a moment is the latest media_state of the patient at or before it
    (before any: unknown, counted as neither). Video if video is true; audio-only if audio is
    true and video is false. Only time inside the (merged, clipped) presence intervals counts.
    Staff media_state events carry user_id instead of patient_id and are ignored.

Other fields
    reconnects: joined events with reconnect=True, at a ms inside [window_start, window_end),
        that reopened presence (it was closed just before them). A stray reconnect while present
        does not count.
    location: the location of the last "waiting" event whose location is not None.
    short_join: see `short_join` (attended, but under the clinic's minimum seconds).
    status: "attended" if attended_seconds > 0, else "declined" if any declined event exists,
        else "absent". admitted: any "admitted" event exists.
    The report covers every patient id that appears in any event, sorted by id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Interval = tuple[int, int]
AttendanceStatus = Literal["attended", "declined", "absent"]
MediaKind = Literal["video", "audio", "none"]


@dataclass(frozen=True)
class PatientAttendance:
    intervals: list[Interval]
    attended_seconds: int
    waited_seconds: int
    first_join: int | None
    last_leave: int | None
    reconnects: int
    video_seconds: int
    audio_only_seconds: int
    location: str | None
    status: AttendanceStatus
    admitted: bool


# -- events ------------------------------------------------------------------------------


def event_at(event: Mapping[str, Any]) -> int:
    """The event's time in ms; an event without an integer `at` is an error, never guessed."""
    at = event.get("at")
    if isinstance(at, bool) or not isinstance(at, int):
        raise ValueError(f"attendance event without an integer 'at' (ms): {dict(event)!r}")
    return at


def sort_events(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Events in processing order: exact duplicates dropped, then by `at`, stable."""
    seen: set[str] = set()
    unique: list[Mapping[str, Any]] = []
    for event in events:
        key = json.dumps(event, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            unique.append(event)
    return sorted(unique, key=_order)


def _order(event: Mapping[str, Any]) -> tuple[int, int]:
    """By time, then by the session's own numbering (events without one, e.g. media reports, first)."""
    seq = event.get("seq")
    return event_at(event), seq if isinstance(seq, int) else -1


def media_kind(event: Mapping[str, Any]) -> MediaKind:
    if event.get("video") is True:
        return "video"
    if event.get("audio") is True:
        return "audio"
    return "none"


# -- intervals -----------------------------------------------------------------------------


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with empty intervals dropped and overlapping or touching ones joined."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def clip_intervals(intervals: Iterable[Interval], start: int, end: int) -> list[Interval]:
    """The parts of `intervals` inside [start, end], merged."""
    return merge_intervals((max(s, start), min(e, end)) for s, e in intervals)


def subtract_intervals(intervals: Iterable[Interval], remove: Iterable[Interval]) -> list[Interval]:
    """The parts of `intervals` outside every interval of `remove`, merged."""
    cuts = merge_intervals(remove)
    result: list[Interval] = []
    for start, end in merge_intervals(intervals):
        cursor = start
        for cut_start, cut_end in cuts:
            if cut_end <= cursor:
                continue
            if cut_start >= end:
                break
            if cut_start > cursor:
                result.append((cursor, cut_start))
            cursor = cut_end
            if cursor >= end:
                break
        if cursor < end:
            result.append((cursor, end))
    return result


def total_ms(intervals: Iterable[Interval]) -> int:
    return sum(end - start for start, end in intervals if end > start)


def floor_seconds(ms: int) -> int:
    """Whole seconds, rounded down: the one rounding step for every total."""
    if ms < 0:
        raise ValueError("a duration cannot be negative")
    return ms // 1000


DEFAULT_MIN_ATTENDED_SECONDS = 60


def short_join(attended_seconds: int, minimum_seconds: int) -> bool:
    """A very short join (PORCHLIGHT_MIN_ATTENDED_SECONDS, 60 by default): the patient attended,
    but for less than the minimum. The record keeps status "attended" with its seconds, and is
    flagged `short_join`; its billing record says `below_minimum` with no suggested units."""
    return 0 < attended_seconds < minimum_seconds


def attended_minutes(seconds: int) -> int:
    """Whole minutes, rounded down: floor(attended_seconds / 60)."""
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds // 60


def media_ms(media: Sequence[tuple[int, MediaKind]], presence: Sequence[Interval]) -> tuple[int, int]:
    """(video ms, audio-only ms) inside `presence`, given media changes (at, kind) in order."""
    changes: list[tuple[int, MediaKind]] = []
    for at, kind in media:
        if changes and changes[-1][0] == at:
            changes[-1] = (at, kind)  # the later report at the same ms wins
        else:
            changes.append((at, kind))
    video = audio = 0
    for start, end in presence:
        for i, (since, kind) in enumerate(changes):
            if kind == "none":
                continue
            until = changes[i + 1][0] if i + 1 < len(changes) else end
            overlap = min(end, until) - max(start, since)
            if overlap > 0:
                if kind == "video":
                    video += overlap
                else:
                    audio += overlap
    return video, audio


# -- attendance ----------------------------------------------------------------------------


def patient_attendance(events: Sequence[Mapping[str, Any]], window_start: int, window_end: int) -> PatientAttendance:
    """Attendance of one patient from that patient's events, already in `sort_events` order."""
    present_since: int | None = None
    waiting_since: int | None = None
    presence: list[Interval] = []
    waiting: list[Interval] = []
    media: list[tuple[int, MediaKind]] = []
    reconnects = 0
    location: str | None = None
    admitted = declined = False

    for event in events:
        at = event_at(event)
        kind = event.get("type")
        if kind == "joined":
            if present_since is None:
                present_since = at
                if event.get("reconnect") is True and window_start <= at < window_end:
                    reconnects += 1
        elif kind == "left":
            if event.get("from") == "waiting":
                if waiting_since is not None:
                    waiting.append((waiting_since, at))
                    waiting_since = None
            elif present_since is not None:
                presence.append((present_since, at))
                present_since = None
        elif kind in ("admitted", "declined"):
            admitted = admitted or kind == "admitted"
            declined = declined or kind == "declined"
            if waiting_since is not None:
                waiting.append((waiting_since, at))
                waiting_since = None
        elif kind == "waiting":
            if waiting_since is None:
                waiting_since = at
            if isinstance(event.get("location"), str):
                location = event["location"]
        elif kind == "media_state":
            media.append((at, media_kind(event)))

    if present_since is not None:
        presence.append((present_since, window_end))
    if waiting_since is not None:
        waiting.append((waiting_since, window_end))

    intervals = clip_intervals(presence, window_start, window_end)
    waited = subtract_intervals(clip_intervals(waiting, window_start, window_end), intervals)
    attended_seconds = floor_seconds(total_ms(intervals))
    video, audio = media_ms(media, intervals)
    status: AttendanceStatus = "attended" if attended_seconds > 0 else "declined" if declined else "absent"
    return PatientAttendance(
        intervals=intervals,
        attended_seconds=attended_seconds,
        waited_seconds=floor_seconds(total_ms(waited)),
        first_join=intervals[0][0] if intervals else None,
        last_leave=intervals[-1][1] if intervals else None,
        reconnects=reconnects,
        video_seconds=floor_seconds(video),
        audio_only_seconds=floor_seconds(audio),
        location=location,
        status=status,
        admitted=admitted,
    )


def events_by_patient(events: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Each patient's events in processing order, keyed by patient id (sorted); staff events dropped."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for event in sort_events(events):
        patient_id = event.get("patient_id")
        if isinstance(patient_id, str):
            grouped.setdefault(patient_id, []).append(event)
    return {pid: grouped[pid] for pid in sorted(grouped)}


def session_attendance(
    events: Iterable[Mapping[str, Any]], window_start: int, window_end: int
) -> dict[str, PatientAttendance]:
    """Attendance of every patient that appears in the events, within [window_start, window_end]."""
    if window_end < window_start:
        raise ValueError("window_end is before window_start")
    return {
        pid: patient_attendance(patient_events, window_start, window_end)
        for pid, patient_events in events_by_patient(events).items()
    }
