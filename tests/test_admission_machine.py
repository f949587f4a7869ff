"""Property tests: the admission state machine against a simple model of the rules."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from server.lobby.machine import RuleViolation, Session, Status

GRACE = 120_000
PATIENTS = ["p0", "p1"]
ACTIONS = ["check_in", "admit", "decline", "remove", "send_back", "leave", "drop", "end"]


@dataclass
class Model:
    """The rules in their plainest form: one status and one timestamp per patient."""

    status: dict[str, str]
    since: dict[str, int]
    ended: bool = False

    def expect(self, action: str, pid: str, now: int) -> str | None:
        """Apply `action`; return the error code the server must give, or None."""
        s = self.status.get(pid, "none")
        if self.ended:
            return None if action == "drop" else "session_ended"
        if action == "check_in":
            if s == "away" and now - self.since[pid] <= GRACE:
                self.status[pid], self.since[pid] = "in", now
            elif s not in ("waiting", "in"):
                self.status[pid], self.since[pid] = "waiting", now
            return None
        if action in ("admit", "decline"):
            if s != "waiting":
                return "not_waiting"
            self.status[pid] = "in" if action == "admit" else "out"
            return None
        if action == "remove":
            if s not in ("in", "away"):
                return "not_in_session"
            self.status[pid] = "out"
            return None
        if action == "send_back":
            if s != "in":
                return "not_in_session"
            self.status[pid], self.since[pid] = "waiting", now
            return None
        if action == "leave":
            if s in ("waiting", "in"):
                self.status[pid] = "out"
            return None
        if action == "drop":
            if s == "waiting":
                self.status[pid] = "out"
            elif s == "in":
                self.status[pid], self.since[pid] = "away", now
            return None
        if action == "end":
            self.ended = True
            for p, st_ in self.status.items():
                if st_ != "none":
                    self.status[p] = "out"
            return None
        raise AssertionError(action)


STATUS = {Status.WAITING: "waiting", Status.IN_SESSION: "in", Status.AWAY: "away", Status.OUT: "out"}

# What the rules allow from each state; most steps take one of these, some take any action,
# so both the paths through the machine and the refusals are explored.
VALID = {
    "none": ["check_in"], "out": ["check_in"],
    "waiting": ["admit", "decline", "leave", "drop", "check_in"],
    "in": ["remove", "send_back", "leave", "drop", "check_in"],
    "away": ["check_in", "remove"],
}
GAPS = st.one_of(st.sampled_from([0, 1, GRACE - 1, GRACE, GRACE + 1]), st.integers(0, 3 * GRACE))


def run(session: Session, action: str, pid: str, now: int) -> list[dict[str, object]]:
    if action == "check_in":
        return session.check_in(pid, now, "home")
    if action == "drop":
        return session.drop(pid, now)
    if action == "leave":
        return session.leave(pid, now)
    if action == "end":
        return session.end(now)
    return list(getattr(session, action)(pid, now, "usr_f"))  # admit, decline, remove, send_back


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_machine_follows_the_model_and_never_double_counts(data: st.DataObject) -> None:
    session = Session("ses_1", started_at=0, grace_ms=GRACE)
    model = Model({}, {})
    now = 0
    events: list[dict[str, object]] = []
    for _ in range(data.draw(st.integers(1, 40))):
        pid = data.draw(st.sampled_from(PATIENTS))
        state = "none" if model.ended else model.status.get(pid, "none")
        choices = ACTIONS if model.ended else VALID[state]
        action = data.draw(st.one_of(st.sampled_from(choices), st.sampled_from(ACTIONS))
                           if data.draw(st.integers(0, 9)) < 8 else st.sampled_from(ACTIONS))
        now += data.draw(GAPS)
        want = model.expect(action, pid, now)
        try:
            new = run(session, action, pid, now)
            got = None
        except RuleViolation as exc:
            new, got = [], exc.code
        assert got == want, (action, pid, got, want)
        events += new
        for p in PATIENTS:
            status = session.patients.get(p)
            assert (STATUS[status.status] if status else "none") == model.status.get(p, "none"), (action, p)
        for st_ in Status:  # who is in each state, as the session answers it, agrees with the patients
            assert set(session.with_status(st_)) == {p for p, pt in session.patients.items() if pt.status is st_}
            assert session.count(st_) == len(session.with_status(st_))

    # Events tell a consistent story per patient: presence opens with joined, closes with left,
    # never overlaps, and only an admission (or a reconnect within grace) opens it.
    for p in PATIENTS:
        present = False
        admitted_pending = False
        dropped_at: int | None = None
        last_at = 0
        for e in (e for e in events if e.get("patient_id") == p):
            at = int(e["at"])  # type: ignore[call-overload]
            assert at >= last_at, "events of one patient never go back in time"
            last_at = at
            if e["type"] == "admitted":
                assert not present
                admitted_pending = True
            elif e["type"] == "joined":
                assert not present, "joined twice without leaving: double counting"
                if e["reconnect"]:
                    assert dropped_at is not None and at - dropped_at <= GRACE
                else:
                    assert admitted_pending
                present, admitted_pending, dropped_at = True, False, None
            elif e["type"] == "left" and e.get("from") != "waiting" and e["reason"] not in ("declined",):
                assert present, f"left without being present: {e}"
                present = False
                dropped_at = at if e["reason"] == "drop" else None
        assert not (session.ended_at is not None and present), "the end closes every presence"


def test_end_twice_is_refused_and_changes_nothing() -> None:
    session = Session("ses_1", started_at=0, grace_ms=GRACE)
    session.check_in("p0", 10, "home")
    session.admit("p0", 20, "f")
    assert [e["type"] for e in session.end(30)] == ["left"]
    try:
        session.end(40)
    except RuleViolation as exc:
        assert exc.code == "session_ended"
    else:
        raise AssertionError("a second end must be refused")
    assert session.ended_at == 30


def test_drop_time_is_never_before_admission() -> None:
    session = Session("ses_1", started_at=0, grace_ms=GRACE)
    session.check_in("p0", 10, "home")
    session.admit("p0", 50, "f")
    left = session.drop("p0", last_heard=40)  # last heard while still waiting
    assert left[0]["at"] == 50


def test_grace_period_edges() -> None:
    for back_after, expected in ((GRACE, Status.IN_SESSION), (GRACE + 1, Status.WAITING)):
        session = Session("ses_1", started_at=0, grace_ms=GRACE)
        session.check_in("p0", 0, "home")
        session.admit("p0", 10, "f")
        session.drop("p0", last_heard=1_000)
        events = session.check_in("p0", 1_000 + back_after, "home")
        assert session.patients["p0"].status is expected
        assert [e["type"] for e in events] == (["joined"] if expected is Status.IN_SESSION else ["waiting"])
