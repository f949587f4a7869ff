"""The `waiting_list` frame built from entries kept between pushes is, byte for byte, the frame
encoded whole from the waiting room as it is now, whatever happened in between."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from server.clock import iso
from server.lobby.machine import Patient, Session, Status
from server.lobby.presence import WaitingList

IDS = [f"pat_{i}" for i in range(12)]
NAMES = ["Ann", "Bo", "Ça va", "李", "Patient", 'Quote "q"']

patient = st.builds(Patient, status=st.sampled_from(list(Status)),
                    since=st.integers(1_700_000_000_000, 1_700_000_100_000))
room = st.tuples(
    st.dictionaries(st.sampled_from(IDS), patient, max_size=len(IDS)),  # the session's patients
    st.dictionaries(st.sampled_from(IDS), st.sampled_from(NAMES)),  # names known (else "Patient")
    st.booleans(),  # open (a session) or early check-ins before it opens
)


def encoded_whole(rows: list[tuple[int, str]], names: dict[str, str]) -> str:
    waiting = [{"patient_id": pid, "display_name": names.get(pid, "Patient"), "waiting_since": iso(since)}
               for since, pid in sorted(rows)]
    return json.dumps({"type": "waiting_list", "waiting": waiting}, separators=(",", ":"))


@given(st.lists(room, min_size=1, max_size=8))
def test_each_push_is_the_whole_list_encoded_now(pushes: list[tuple[dict[str, Patient], dict[str, str], bool]]) -> None:
    frames = WaitingList()
    for patients, names, is_open in pushes:
        if is_open:
            session: Session | None = Session("ses_1", 1_700_000_000_000, 60_000, patients=dict(patients))
            early: dict[str, tuple[int, Any]] = {}
            rows = [(p.since, pid) for pid, p in patients.items() if p.status is Status.WAITING]
        else:
            session = None
            early = {pid: (p.since, None) for pid, p in patients.items()}
            rows = [(at, pid) for pid, (at, _) in early.items()]
        text = frames.frame(session, early, lambda pid, names=names: names.get(pid, "Patient"))
        assert text == encoded_whole(rows, names)
        json.loads(text)  # and it is JSON
