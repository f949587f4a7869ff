"""A session's admission state and attendance events in Redis: written with each change in
one transaction, read back after a restart or a failed write. The session record itself
(group, state, times) is `server.store.sessions`'s."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from server.clock import iso
from server.lobby.machine import Event, Patient, Session, Status
from server.store import keys, sessions
from server.store.connection import Redis


def write_changes(pipe: Any, session: Session, events: list[Event], patient_ids: Iterable[str]) -> None:
    """Changed patient states and their events (inside a transaction)."""
    states = {pid: json.dumps(session.patients[pid].to_json()) for pid in patient_ids if pid in session.patients}
    if states:
        pipe.hset(keys.session_patients(session.session_id), mapping=states)
    if events:
        pipe.rpush(keys.session_events(session.session_id), *[json.dumps(e, separators=(",", ":")) for e in events])


def describe_session(session: Session, group_id: str, names: dict[str, str]) -> dict[str, Any]:
    def name(pid: str) -> str:
        return names.get(pid, "Patient")

    waiting = sorted((p.since, pid) for pid, p in session.patients.items() if p.status is Status.WAITING)
    present = sorted((p.joined_at or p.since, pid) for pid, p in session.patients.items()
                     if p.status is Status.IN_SESSION)
    return {
        "id": session.session_id,
        "group_id": group_id,
        "state": "open" if session.is_open else "ended",
        "started_at": iso(session.started_at),
        "ended_at": iso(session.ended_at),
        "waiting": [{"patient_id": pid, "display_name": name(pid), "waiting_since": iso(t)} for t, pid in waiting],
        "participants": [{"patient_id": pid, "display_name": name(pid), "joined_at": iso(t)} for t, pid in present],
    }


async def load_session(redis: Redis, session_id: str, grace_ms: int) -> Session | None:
    record = await sessions.read(redis, session_id)
    if record is None:
        return None
    states = await redis.hgetall(keys.session_patients(session_id))
    recorded = await redis.llen(keys.session_events(session_id))  # new events number on from here
    return Session(
        session_id,
        started_at=record.started_at,
        grace_ms=grace_ms,
        ended_at=record.ended_at,
        patients={pid: Patient.from_json(json.loads(raw)) for pid, raw in states.items()},
        next_seq=recorded,
    )
