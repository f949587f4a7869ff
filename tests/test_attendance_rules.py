"""Attendance rules: named cases, and property tests against a tick-by-tick brute-force model.

All times in the property tests are multiples of TICK (250 ms), and so are the window bounds, so
nothing changes inside a tick: counting ticks * TICK is the exact millisecond total.
"""

from __future__ import annotations

import json
import random
from bisect import bisect_right
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.attendance.rules import (
    PatientAttendance,
    attended_minutes,
    clip_intervals,
    merge_intervals,
    session_attendance,
    subtract_intervals,
)
from server.lobby.machine import Event, RuleViolation, Session, Status

SID = "ses_1"
T0 = 1_800_000_000_000  # a realistic epoch in ms for the named cases
MIN = 60_000
SEC = 1_000
TICK = 250


def ev(kind: str, pid: str, at: int, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": kind, "session_id": SID, "patient_id": pid, "at": at}
    event.update(extra)
    return event


def joined(pid: str, at: int, reconnect: bool = False) -> dict[str, Any]:
    return ev("joined", pid, at, reconnect=reconnect)


def left(pid: str, at: int, reason: str = "leave", where: str | None = "session") -> dict[str, Any]:
    event = ev("left", pid, at, reason=reason)
    if where is not None:
        event["from"] = where
    return event


def media(pid: str, at: int, audio: bool, video: bool) -> dict[str, Any]:
    return ev("media_state", pid, at, audio=audio, video=video)


def one(events: Sequence[Mapping[str, Any]], start: int, end: int, pid: str = "p1") -> PatientAttendance:
    return session_attendance(events, start, end)[pid]


# -- named cases ------------------------------------------------------------------------------


def test_drop_and_reconnect_gives_two_stretches_without_the_gap() -> None:
    s = Session(SID, started_at=T0, grace_ms=2 * MIN)
    events = s.check_in("p1", T0, "home")
    events += s.admit("p1", T0 + 1 * MIN, "u_doc")
    events += s.drop("p1", last_heard=T0 + 20 * MIN)
    events += s.check_in("p1", T0 + 21 * MIN, None)  # within grace: straight back in
    events += s.end(T0 + 50 * MIN)
    assert {k: v for k, v in events[-2].items() if k != "seq"} == joined("p1", T0 + 21 * MIN, reconnect=True)
    assert [e["seq"] for e in events] == list(range(len(events)))  # numbered in the order recorded
    a = one(events, T0, T0 + 60 * MIN)
    assert a.intervals == [(T0 + 1 * MIN, T0 + 20 * MIN), (T0 + 21 * MIN, T0 + 50 * MIN)]
    assert a.attended_seconds == (19 + 29) * 60
    assert a.reconnects == 1
    assert a.waited_seconds == 60
    assert (a.first_join, a.last_leave) == (T0 + 1 * MIN, T0 + 50 * MIN)
    assert (a.status, a.admitted, a.location) == ("attended", True, "home")
    assert attended_minutes(a.attended_seconds) == 48


def test_two_events_that_read_alike_in_one_millisecond_are_two_not_a_duplicate() -> None:
    """Checked in and declined twice in the same ms: the second decline is not taken for a copy."""
    s = Session(SID, started_at=T0, grace_ms=2 * MIN)
    events = s.check_in("p1", T0, "home") + s.decline("p1", T0, "u_doc")
    events += s.check_in("p1", T0, "other") + s.decline("p1", T0, "u_doc")
    for order in (events, list(reversed(events)), events + events[:2]):  # any order, with real copies
        a = one(order, T0, T0 + 10 * MIN)
        assert (a.status, a.waited_seconds, a.attended_seconds) == ("declined", 0, 0)


def test_ten_minutes_in_the_waiting_room_are_waited_not_attended() -> None:
    s = Session(SID, started_at=T0, grace_ms=2 * MIN)
    events = s.check_in("p1", T0 + 5 * MIN, "other")
    events += s.admit("p1", T0 + 15 * MIN, "u_doc")
    events += s.leave("p1", T0 + 45 * MIN)
    a = one(events, T0, T0 + 60 * MIN)
    assert a.waited_seconds == 600
    assert a.attended_seconds == 30 * 60
    assert a.intervals == [(T0 + 15 * MIN, T0 + 45 * MIN)]
    assert a.location == "other"


def test_waiting_still_open_at_window_end_counts_up_to_the_end() -> None:
    a = one([ev("waiting", "p1", T0 + 50 * MIN, location=None)], T0, T0 + 60 * MIN)
    assert (a.waited_seconds, a.attended_seconds, a.status, a.location) == (600, 0, "absent", None)


def test_presence_outside_the_window_is_clipped() -> None:
    events = [joined("p1", T0 - 5 * MIN), left("p1", T0 + 10 * MIN), joined("p1", T0 + 50 * MIN)]
    a = one(events, T0, T0 + 60 * MIN)  # the second presence never closes: it ends at window_end
    assert a.intervals == [(T0, T0 + 10 * MIN), (T0 + 50 * MIN, T0 + 60 * MIN)]
    assert a.attended_seconds == 20 * 60
    late = one([joined("p1", T0 + 61 * MIN), left("p1", T0 + 70 * MIN)], T0, T0 + 60 * MIN)
    assert (late.intervals, late.attended_seconds, late.first_join, late.status) == ([], 0, None, "absent")


def test_two_tabs_joining_do_not_double_count() -> None:
    # Exact duplicates, and a second tab joining while already present: one presence.
    dup = [joined("p1", T0), joined("p1", T0), left("p1", T0 + 30 * MIN), left("p1", T0 + 30 * MIN)]
    assert one(dup, T0, T0 + 60 * MIN).intervals == [(T0, T0 + 30 * MIN)]
    tabs = [joined("p1", T0), joined("p1", T0 + 5 * MIN), left("p1", T0 + 30 * MIN), left("p1", T0 + 40 * MIN)]
    a = one(tabs, T0, T0 + 60 * MIN)
    assert a.intervals == [(T0, T0 + 30 * MIN)]  # presence closes at the first left after it opened
    assert a.attended_seconds == 30 * 60


def test_send_back_then_readmit_gives_two_intervals() -> None:
    s = Session(SID, started_at=T0, grace_ms=2 * MIN)
    events = s.check_in("p1", T0, "home")
    events += s.admit("p1", T0 + 2 * MIN, "u_doc")
    events += s.send_back("p1", T0 + 10 * MIN, "u_doc")
    events += s.admit("p1", T0 + 13 * MIN, "u_doc")
    events += s.end(T0 + 40 * MIN)
    a = one(events, T0, T0 + 60 * MIN)
    assert a.intervals == [(T0 + 2 * MIN, T0 + 10 * MIN), (T0 + 13 * MIN, T0 + 40 * MIN)]
    assert a.waited_seconds == (2 + 3) * 60
    assert a.reconnects == 0


def test_audio_only_and_video_seconds_are_split_within_presence() -> None:
    events = [
        media("p1", T0 - 1 * MIN, audio=True, video=True),  # before joining: applies from the join on
        joined("p1", T0),
        media("p1", T0 + 10 * MIN, audio=True, video=False),
        media("p1", T0 + 20 * MIN, audio=False, video=False),
        media("p1", T0 + 25 * MIN, audio=False, video=True),  # camera without microphone: video
        left("p1", T0 + 30 * MIN),
        {"type": "media_state", "session_id": SID, "user_id": "u_doc", "at": T0, "audio": True, "video": True},
    ]
    a = one(events, T0, T0 + 60 * MIN)
    assert (a.video_seconds, a.audio_only_seconds) == (15 * 60, 10 * 60)
    assert list(session_attendance(events, T0, T0 + 60 * MIN)) == ["p1"]  # staff media is not a patient


def test_media_before_any_report_is_unknown_and_counts_as_neither() -> None:
    a = one([joined("p1", T0), media("p1", T0 + 5 * MIN, audio=True, video=False), left("p1", T0 + 10 * MIN)],
            T0, T0 + 60 * MIN)
    assert (a.attended_seconds, a.video_seconds, a.audio_only_seconds) == (600, 0, 300)


def test_leave_and_rejoin_at_the_same_ms_leave_no_gap() -> None:
    events = [joined("p1", T0), left("p1", T0 + 5 * MIN, "drop"), joined("p1", T0 + 5 * MIN, reconnect=True),
              left("p1", T0 + 9 * MIN)]
    a = one(events, T0, T0 + 60 * MIN)
    assert a.intervals == [(T0, T0 + 9 * MIN)]
    assert a.reconnects == 1


def test_join_and_drop_at_the_same_ms_leave_no_presence() -> None:
    # The machine stamps a drop at max(last_heard, since): a connection that died before its first
    # heartbeat after admission is dropped at the admission time itself.
    s = Session(SID, started_at=T0, grace_ms=2 * MIN)
    events = s.check_in("p1", T0, None)
    events += s.admit("p1", T0 + 1 * MIN, "u_doc")
    events += s.drop("p1", last_heard=T0 + 30 * SEC)
    assert events[-1]["at"] == T0 + 1 * MIN
    events += s.end(T0 + 60 * MIN)
    a = one(events, T0, T0 + 60 * MIN)
    assert (a.intervals, a.attended_seconds, a.status, a.admitted, a.waited_seconds) == ([], 0, "absent", True, 60)


def test_check_in_and_drop_from_the_waiting_room_at_the_same_ms_leave_no_waiting() -> None:
    s = Session(SID, started_at=T0 + 5 * MIN, grace_ms=2 * MIN)
    events = s.check_in("p1", T0 + 5 * MIN, "home", checked_in_at=T0)  # waiting from the session's open
    events += s.drop("p1", last_heard=T0 + 2 * MIN)
    assert [e["at"] for e in events] == [T0 + 5 * MIN, T0 + 5 * MIN]
    assert one(events, T0, T0 + 60 * MIN).waited_seconds == 0


def test_order_of_arrival_and_duplicates_do_not_matter() -> None:
    s = Session(SID, started_at=T0, grace_ms=2 * MIN)
    events = s.check_in("p1", T0, "home") + s.check_in("p2", T0 + 1 * SEC, None)
    events += s.admit("p1", T0 + 1 * MIN, "u_doc")
    events += s.decline("p2", T0 + 2 * MIN, "u_doc")
    events += s.drop("p1", T0 + 20 * MIN)
    events += s.remove("p1", T0 + 21 * MIN, "u_doc")
    events += s.end(T0 + 30 * MIN)
    expected = session_attendance(events, T0, T0 + 30 * MIN)
    rng = random.Random(7)
    for _ in range(20):
        order = list(range(len(events) + 4))
        rng.shuffle(order)
        scrambled = scramble(events + rng.sample(events, 4), order)
        assert session_attendance(scrambled, T0, T0 + 30 * MIN) == expected
    assert expected["p1"].intervals == [(T0 + 1 * MIN, T0 + 20 * MIN)]
    assert (expected["p2"].status, expected["p2"].waited_seconds, expected["p2"].admitted) == ("declined", 119, False)


def test_seconds_are_floored_once_on_the_total() -> None:
    events = [joined("p1", 0), left("p1", 1_500), joined("p1", 3_000), left("p1", 4_500)]
    a = one(events, 0, 10_000)
    assert a.attended_seconds == 3  # 3 000 ms in all, not 1 + 1
    short = one([joined("p1", 0), left("p1", 999)], 0, 10_000)
    assert (short.intervals, short.attended_seconds, short.status) == ([(0, 999)], 0, "absent")
    assert [attended_minutes(s) for s in (0, 59, 60, 3599, 3600)] == [0, 0, 1, 59, 60]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        session_attendance([], 10, 5)
    with pytest.raises(ValueError):
        session_attendance([{"type": "joined", "patient_id": "p1", "at": "12"}], 0, 10)
    with pytest.raises(ValueError):
        attended_minutes(-1)
    assert session_attendance([], 0, 0) == {}


def test_interval_helpers() -> None:
    assert merge_intervals([(5, 9), (0, 2), (2, 3), (4, 4), (8, 12)]) == [(0, 3), (5, 12)]
    assert clip_intervals([(0, 10), (20, 30)], 5, 25) == [(5, 10), (20, 25)]
    assert subtract_intervals([(0, 10), (20, 30)], [(2, 4), (8, 22), (29, 40)]) == [(0, 2), (4, 8), (22, 29)]


# -- the brute-force model --------------------------------------------------------------------



def opens_presence(e: Mapping[str, Any]) -> bool:
    return bool(e["type"] == "joined")


def closes_presence(e: Mapping[str, Any]) -> bool:
    return e["type"] == "left" and e.get("from") != "waiting"


def opens_waiting(e: Mapping[str, Any]) -> bool:
    return bool(e["type"] == "waiting")


def closes_waiting(e: Mapping[str, Any]) -> bool:
    return e["type"] in ("admitted", "declined") or (e["type"] == "left" and e.get("from") == "waiting")


@dataclass
class Expected:
    intervals: list[tuple[int, int]]
    attended_ms: int
    waited_ms: int
    video_ms: int
    audio_ms: int
    reconnects: int
    location: str | None
    admitted: bool
    declined: bool


def runs(ticks: list[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive ticks as [start, end) intervals."""
    out: list[tuple[int, int]] = []
    for t in ticks:
        if out and out[-1][1] == t:
            out[-1] = (out[-1][0], t + TICK)
        else:
            out.append((t, t + TICK))
    return out


def timeline(mine: Sequence[Mapping[str, Any]], opens: Callable[[Mapping[str, Any]], bool],
             closes: Callable[[Mapping[str, Any]], bool]) -> list[tuple[int, bool]]:
    """Replay one patient's events one by one; the state after each ms that holds events."""
    states: list[tuple[int, bool]] = []
    current = False
    for e in mine:
        if opens(e):
            current = True
        elif closes(e):
            current = False
        if states and states[-1][0] == e["at"]:
            states[-1] = (e["at"], current)
        else:
            states.append((e["at"], current))
    return states


def state(states: list[tuple[int, bool]], t: int) -> bool:
    i = bisect_right([at for at, _ in states], t)
    return states[i - 1][1] if i else False


def in_order(events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Exact duplicates dropped, then a stable sort by `at`: the rules' processing order."""
    seen: set[str] = set()
    unique = []
    for e in events:
        key = json.dumps(e, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(e)
    return sorted(unique, key=lambda e: e["at"])


def scramble(events: Sequence[dict[str, Any]], order: Sequence[int]) -> list[dict[str, Any]]:
    """Any order across times, while events of one ms keep their recorded order (the list is append-only)."""
    queues: dict[int, deque[dict[str, Any]]] = defaultdict(deque)
    for e in events:
        queues[e["at"]].append(e)
    return [queues[events[i]["at"]].popleft() for i in order]


def brute_force(events: Sequence[Mapping[str, Any]], start: int, end: int) -> dict[str, Expected]:
    """Replay the events one by one and look at every tick of the window.

    The state at a tick is the state after every event at or before it: a stretch that opens
    and closes within one ms covers no tick.
    """
    ordered = in_order(events)
    result: dict[str, Expected] = {}
    for pid in sorted({e["patient_id"] for e in ordered if "patient_id" in e}):
        mine = [e for e in ordered if e.get("patient_id") == pid]
        presence = timeline(mine, opens_presence, lambda e: closes_presence(e) and not opens_presence(e))
        waiting = timeline(mine, opens_waiting, closes_waiting)
        media = [e for e in mine if e["type"] == "media_state"]
        present_ticks: list[int] = []
        waited = video = audio = 0
        for t in range(start, end, TICK):
            if state(presence, t):
                present_ticks.append(t)
                current = [m for m in media if m["at"] <= t]
                if current and current[-1]["video"]:
                    video += TICK
                elif current and current[-1]["audio"]:
                    audio += TICK
            elif state(waiting, t):
                waited += TICK
        reconnects, present = 0, False
        for e in mine:
            if opens_presence(e):
                if not present and e["reconnect"] and start <= e["at"] < end:
                    reconnects += 1
                present = True
            elif closes_presence(e):
                present = False
        locations = [e["location"] for e in mine if e["type"] == "waiting" and e.get("location") is not None]
        result[pid] = Expected(
            intervals=runs(present_ticks),
            attended_ms=len(present_ticks) * TICK,
            waited_ms=waited,
            video_ms=video,
            audio_ms=audio,
            reconnects=reconnects,
            location=locations[-1] if locations else None,
            admitted=any(e["type"] == "admitted" for e in mine),
            declined=any(e["type"] == "declined" for e in mine),
        )
    return result


def check_shape(a: PatientAttendance, start: int, end: int) -> None:
    for s, e in a.intervals:
        assert start <= s < e <= end
    for (_, e1), (s2, _) in zip(a.intervals, a.intervals[1:], strict=False):
        assert e1 < s2  # sorted, not overlapping, not touching
    assert a.attended_seconds <= (end - start) // 1000
    assert a.video_seconds + a.audio_only_seconds <= a.attended_seconds
    assert (a.first_join, a.last_leave) == ((a.intervals[0][0], a.intervals[-1][1]) if a.intervals else (None, None))
    assert (a.status == "attended") == (a.attended_seconds > 0)


def check_against(got: dict[str, PatientAttendance], want: dict[str, Expected], start: int, end: int) -> None:
    assert list(got) == list(want)
    for pid, w in want.items():
        a = got[pid]
        check_shape(a, start, end)
        assert a.intervals == w.intervals
        assert a.attended_seconds == w.attended_ms // 1000
        assert a.waited_seconds == w.waited_ms // 1000
        assert a.video_seconds == w.video_ms // 1000
        assert a.audio_only_seconds == w.audio_ms // 1000
        assert a.reconnects == w.reconnects
        assert a.location == w.location
        assert a.admitted == w.admitted
        assert a.status == ("attended" if w.attended_ms >= 1000 else "declined" if w.declined else "absent")


# -- property: random event soup --------------------------------------------------------------

LEFTS = [("leave", "session"), ("leave", "waiting"), ("drop", "session"), ("drop", "waiting"),
         ("removed", None), ("sent_back", None), ("session_end", "session"), ("session_end", "waiting")]
KINDS = ["waiting", "admitted", "joined", "joined", "left", "left", "declined", "removed", "media_state",
         "media_state", "staff_media", "unknown"]


@st.composite
def event_soup(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int, int]:
    grid = draw(st.lists(st.integers(0, 480), min_size=1, max_size=16, unique=True))
    at = st.sampled_from(grid).map(lambda k: k * TICK)
    events: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 3))):
        pid = f"p{i}"
        for _ in range(draw(st.integers(0, 14))):
            kind, t = draw(st.sampled_from(KINDS)), draw(at)
            if kind == "waiting":
                events.append(ev("waiting", pid, t, location=draw(st.sampled_from(["home", "other", None]))))
            elif kind in ("admitted", "declined", "removed"):
                events.append(ev(kind, pid, t, by="u_doc"))
            elif kind == "joined":
                events.append(joined(pid, t, reconnect=draw(st.booleans())))
            elif kind == "left":
                reason, where = draw(st.sampled_from(LEFTS))
                events.append(left(pid, t, reason, where))
            elif kind == "media_state":
                events.append(media(pid, t, audio=draw(st.booleans()), video=draw(st.booleans())))
            elif kind == "staff_media":
                events.append({"type": "media_state", "session_id": SID, "user_id": "u_doc", "at": t,
                               "audio": True, "video": True})
            else:
                events.append(ev("hand_raised", pid, t))
    if events:
        events += [dict(e) for e in draw(st.lists(st.sampled_from(events), max_size=6))]
    events = draw(st.permutations(events))
    bounds = st.one_of(st.sampled_from(grid), st.integers(0, 480)).map(lambda k: k * TICK)
    start, end = sorted((draw(bounds), draw(bounds)))
    return events, start, end


@settings(max_examples=300, deadline=None)
@given(event_soup())
def test_random_events_match_the_brute_force_model(case: tuple[list[dict[str, Any]], int, int]) -> None:
    events, start, end = case
    got = session_attendance(events, start, end)
    check_against(got, brute_force(events, start, end), start, end)
    assert session_attendance(list(reversed(events)), start, end).keys() == got.keys()


# -- property: streams the lobby machine really produces --------------------------------------

PATIENTS = ["p0", "p1", "p2"]
ACTIONS = ["check_in", "check_in", "admit", "admit", "decline", "remove", "send_back", "leave", "drop", "drop",
           "end"]
GRACE = 5_000


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_machine_streams_match_the_machine_own_states(data: st.DataObject) -> None:
    """Drive the real state machine; its status timeline is the truth the events must reproduce."""
    draw = data.draw
    opened = draw(st.integers(0, 40)) * TICK
    s = Session(SID, started_at=opened, grace_ms=GRACE)
    events: list[Event] = []
    timeline: dict[str, list[tuple[int, Status]]] = {}  # per patient: (from when, status), in order
    reconnect_at: dict[str, list[int]] = {}
    admitted: set[str] = set()
    declined: set[str] = set()
    now = opened
    steps: list[tuple[str, str, int]] = [("early", p, opened - draw(st.integers(0, 8)) * TICK)
                                         for p in draw(st.lists(st.sampled_from(PATIENTS), max_size=2, unique=True))]
    for _ in range(draw(st.integers(0, 30))):
        now += draw(st.sampled_from([0, 0, 1, 2, 4, 8, 16, 40])) * TICK
        steps.append((draw(st.sampled_from(ACTIONS)), draw(st.sampled_from(PATIENTS)), now))
    for action, pid, t in steps:
        before = {p: patient.status for p, patient in s.patients.items()}
        try:
            if action == "early":
                new = s.check_in(pid, opened, "home", checked_in_at=t)
            elif action == "check_in":
                new = s.check_in(pid, t, draw(st.sampled_from(["home", "other", None])))
            elif action in ("admit", "decline", "remove", "send_back"):
                new = getattr(s, action)(pid, t, "u_doc")
            elif action == "leave":
                new = s.leave(pid, t)
            elif action == "drop":
                new = s.drop(pid, t - draw(st.integers(0, 12)) * TICK)
            else:
                new = s.end(t)
        except RuleViolation:
            continue
        events += new
        admitted |= {e["patient_id"] for e in new if e["type"] == "admitted"}
        declined |= {e["patient_id"] for e in new if e["type"] == "declined"}
        for p, patient in s.patients.items():
            if before.get(p) is not patient.status:
                at = next((e["at"] for e in new if e.get("patient_id") == p), t)
                assert not timeline.get(p) or timeline[p][-1][0] <= at  # each patient's times only go forward
                timeline.setdefault(p, []).append((at, patient.status))
                if before.get(p) is Status.AWAY and patient.status is Status.IN_SESSION:
                    reconnect_at.setdefault(p, []).append(at)

    bounds = st.integers(0, 480).map(lambda k: k * TICK)
    start, end = sorted((draw(bounds), draw(bounds)))
    scrambled = events + [dict(e) for e in draw(st.lists(st.sampled_from(events), max_size=5))] if events else []
    got = session_attendance(scramble(scrambled, draw(st.permutations(range(len(scrambled))))), start, end)
    assert sorted(got) == sorted(timeline)
    for pid, changes in timeline.items():

        def status(t: int, changes: list[tuple[int, Status]] = changes) -> Status | None:
            current = None
            for since, st_ in changes:
                if since <= t:
                    current = st_
            return current

        present = [t for t in range(start, end, TICK) if status(t) is Status.IN_SESSION]
        waiting = [t for t in range(start, end, TICK) if status(t) is Status.WAITING]
        a = got[pid]
        check_shape(a, start, end)
        assert a.intervals == runs(present)
        assert a.attended_seconds == len(present) * TICK // 1000
        assert a.waited_seconds == len(waiting) * TICK // 1000
        assert a.reconnects == sum(1 for t in reconnect_at.get(pid, []) if start <= t < end)
        assert a.admitted == (pid in admitted)
        assert a.status == ("attended" if a.attended_seconds else "declined" if pid in declined else "absent")
