"""The `waiting_list` frame kept between pushes (changed only where the waiting room changed)
is, byte for byte, the frame encoded whole from the waiting room as it is now, whatever
happened in between: arrivals, admissions, drops and returns, patients sent back, renames."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from server.clock import iso
from server.lobby.machine import Patient, RuleViolation, Session, Status
from server.lobby.presence import WaitingList

IDS = [f"pat_{i}" for i in range(4)]
NAMES = ["Ann", "Bo", "Ça va", "李", 'Quote "q"']
START = 1_700_000_000_000

step = st.one_of(
    st.tuples(st.sampled_from(["check_in", "admit", "drop", "send_back", "leave"]), st.sampled_from(IDS),
              st.sampled_from([0, 1, 1000, 61_000])),  # the action, whom, how many ms later
    st.tuples(st.just("rename"), st.sampled_from(IDS), st.sampled_from(NAMES)),
    st.tuples(st.just("push"), st.just(""), st.just(0)),
)


def encoded_whole(session: Session, names: dict[str, str]) -> str:
    rows = sorted((p.since, pid) for pid, p in session.patients.items() if p.status is Status.WAITING)
    waiting = [{"patient_id": pid, "display_name": names.get(pid, "Patient"), "waiting_since": iso(since)}
               for since, pid in rows]
    return json.dumps({"type": "waiting_list", "waiting": waiting}, separators=(",", ":"))


@settings(max_examples=400)
@given(st.lists(step, max_size=40), st.booleans())
def test_each_push_is_the_whole_list_encoded_now(steps: list[tuple[str, str, object]], reload: bool) -> None:
    session = Session("ses_1", START, grace_ms=1500, patients={})
    frames, names, renamed, now = WaitingList(), {}, set(), START
    for kind, pid, arg in steps:
        if kind == "push":
            if reload:  # a reload from Redis: the same patients in a new Session object
                session = Session("ses_1", START, grace_ms=1500, patients=session.patients)
            text = frames.frame(session, {}, lambda p: names.get(p, "Patient"), renamed)
            renamed = set()
            assert text == encoded_whole(session, names)
            json.loads(text)
        elif kind == "rename":
            names[pid] = str(arg)
            renamed.add(pid)
        else:
            now += int(arg)  # type: ignore[call-overload]
            try:
                if kind == "check_in":
                    session.check_in(pid, now, "home")
                elif kind == "admit":
                    session.admit(pid, now, "usr_f")
                elif kind == "drop":
                    session.drop(pid, now)
                elif kind == "send_back":
                    session.send_back(pid, now, "usr_f")
                else:
                    session.leave(pid, now)
            except RuleViolation:
                pass


@given(st.dictionaries(st.sampled_from(IDS), st.integers(START, START + 5)), st.dictionaries(st.sampled_from(IDS),
                                                                                             st.sampled_from(NAMES)))
def test_before_the_session_opens_the_early_check_ins_are_listed(early: dict[str, int], names: dict[str, str]) -> None:
    text = WaitingList().frame(None, {pid: (at, "home") for pid, at in early.items()},
                               lambda p: names.get(p, "Patient"))
    waiting = [{"patient_id": pid, "display_name": names.get(pid, "Patient"), "waiting_since": iso(at)}
               for at, pid in sorted((at, pid) for pid, at in early.items())]
    assert text == json.dumps({"type": "waiting_list", "waiting": waiting}, separators=(",", ":"))


@settings(max_examples=50)
@given(st.dictionaries(st.integers(0, 999).map(lambda i: f"pat_{i:03d}"),
                       st.builds(Patient, status=st.sampled_from(list(Status)),
                                 since=st.integers(START, START + 5_000_000)), min_size=65, max_size=200),
       st.lists(st.tuples(st.sampled_from(["admit", "check_in"]), st.integers(0, 199)), max_size=10))
def test_a_waiting_room_loaded_at_once_then_changed(patients: dict[str, Patient], steps: list[tuple[str, int]]) -> None:
    """A reload (or the first push) takes the whole waiting room at once, in no particular order."""
    session = Session("ses_1", START, grace_ms=1500, patients=patients)
    frames, ids = WaitingList(), sorted(patients)
    assert frames.frame(session, {}, lambda p: "Patient") == encoded_whole(session, {})
    for kind, index in steps:
        with contextlib.suppress(RuleViolation):
            if kind == "admit":
                session.admit(ids[index % len(ids)], START + 6_000_000, "usr_f")
            else:
                session.check_in(ids[index % len(ids)], START + 6_000_000 + index, "home")
        assert frames.frame(session, {}, lambda p: "Patient") == encoded_whole(session, {})
