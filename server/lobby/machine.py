"""The admission state machine of one session. Pure: no I/O, no clock, no connections.

Each patient is in one state:

    WAITING     connected, in the waiting room, not admitted
    IN_SESSION  admitted and connected: present
    AWAY        admitted, connection dropped; back within the grace period goes straight in
    OUT         left, declined, removed, dropped from the waiting room, or the session ended

Every action either changes the state and returns the attendance events it caused, or raises
RuleViolation and changes nothing. Times are integer milliseconds given by the caller.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class Status(StrEnum):
    WAITING = "waiting"
    IN_SESSION = "in_session"
    AWAY = "away"
    OUT = "out"


class LeaveReason(StrEnum):
    LEAVE = "leave"
    DROP = "drop"
    REMOVED = "removed"
    SENT_BACK = "sent_back"
    SESSION_END = "session_end"
    DECLINED = "declined"


class RuleViolation(Exception):
    """An action out of order; `code` is the stable error code clients see."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Event = dict[str, Any]


@dataclass
class Patient:
    status: Status
    since: int  # when the current status began (ms); for AWAY: when last heard
    joined_at: int | None = None  # start of the current stretch in the session
    location: str | None = None
    reason: str | None = None  # why OUT

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Patient:
        return cls(
            status=Status(data["status"]),
            since=int(data["since"]),
            joined_at=data.get("joined_at"),
            location=data.get("location"),
            reason=data.get("reason"),
        )


@dataclass
class Session:
    session_id: str
    started_at: int
    grace_ms: int
    ended_at: int | None = None
    patients: dict[str, Patient] = field(default_factory=dict)
    # Each event's place in the session's record: two events in the same millisecond keep their
    # order, and two that happen to read alike are still two, not a duplicate to drop.
    next_seq: int = 0
    # Who is in each state, in the order they entered it, each with the number of their entry
    # (unique in this object's life): a waiting room of thousands is not scanned for the few in
    # the session on every admission and push, and who left the waiting room and came back is
    # told apart from who stayed. Kept by `_enter`.
    _by_status: dict[Status, dict[str, int]] = field(init=False, repr=False, compare=False)
    _entries: Iterator[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_status = {status: {} for status in Status}
        self._entries = itertools.count()
        for pid, patient in self.patients.items():
            self._enter(pid, patient.status)

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    def with_status(self, status: Status) -> list[str]:
        return list(self._by_status[status])

    def count(self, status: Status) -> int:
        return len(self._by_status[status])

    def waiting(self) -> MappingProxyType[str, int]:
        """Who is waiting, each with the number of their entry into the waiting room."""
        return MappingProxyType(self._by_status[Status.WAITING])

    # -- actions ------------------------------------------------------------------------

    def check_in(
        self, patient_id: str, now: int, location: str | None, checked_in_at: int | None = None
    ) -> list[Event]:
        """A patient's connection says hello (or was waiting when the session opened)."""
        self._require_open()
        current = self.patients.get(patient_id)
        if current is not None and current.status in (Status.WAITING, Status.IN_SESSION):
            # A second tab: one presence, nothing to record.
            if location is not None:
                current.location = location
            return []
        if current is not None and current.status is Status.AWAY and now - current.since <= self.grace_ms:
            self._move(patient_id, current, Status.IN_SESSION)
            current.since = now
            if location is not None:
                current.location = location
            return [self._event("joined", patient_id, now, reconnect=True)]
        since = max(checked_in_at if checked_in_at is not None else now, self.started_at)
        if current is not None:
            del self._by_status[current.status][patient_id]
        self.patients[patient_id] = Patient(Status.WAITING, since=since, location=location)
        self._enter(patient_id, Status.WAITING)
        event = self._event("waiting", patient_id, since, location=location)
        if checked_in_at is not None and checked_in_at < self.started_at:
            event["checked_in_at"] = checked_in_at
        return [event]

    def admit(self, patient_id: str, now: int, by: str) -> list[Event]:
        self._require_open()
        patient = self._require(patient_id, Status.WAITING, "not_waiting", "is not in the waiting room")
        self._move(patient_id, patient, Status.IN_SESSION)
        patient.since = now
        patient.joined_at = now
        return [
            self._event("admitted", patient_id, now, by=by),
            self._event("joined", patient_id, now, reconnect=False),
        ]

    def decline(self, patient_id: str, now: int, by: str) -> list[Event]:
        self._require_open()
        patient = self._require(patient_id, Status.WAITING, "not_waiting", "is not in the waiting room")
        self._out(patient_id, patient, now, LeaveReason.DECLINED)
        return [self._event("declined", patient_id, now, by=by)]

    def remove(self, patient_id: str, now: int, by: str) -> list[Event]:
        self._require_open()
        patient = self.patients.get(patient_id)
        if patient is None or patient.status not in (Status.IN_SESSION, Status.AWAY):
            raise RuleViolation("not_in_session", f"patient {patient_id} is not in the session")
        was_present = patient.status is Status.IN_SESSION
        self._out(patient_id, patient, now, LeaveReason.REMOVED)
        if was_present:
            return [self._event("left", patient_id, now, reason=LeaveReason.REMOVED, by=by)]
        return [self._event("removed", patient_id, now, by=by)]

    def send_back(self, patient_id: str, now: int, by: str) -> list[Event]:
        self._require_open()
        patient = self._require(patient_id, Status.IN_SESSION, "not_in_session", "is not in the session")
        self._move(patient_id, patient, Status.WAITING)
        patient.since = now
        patient.joined_at = None
        return [
            self._event("left", patient_id, now, reason=LeaveReason.SENT_BACK, by=by),
            self._event("waiting", patient_id, now, location=patient.location),
        ]

    def leave(self, patient_id: str, now: int) -> list[Event]:
        """The patient chose to leave (the `leave` frame)."""
        self._require_open()
        patient = self.patients.get(patient_id)
        if patient is None or patient.status not in (Status.WAITING, Status.IN_SESSION):
            return []
        where = "waiting" if patient.status is Status.WAITING else "session"
        self._out(patient_id, patient, now, LeaveReason.LEAVE)
        return [self._event("left", patient_id, now, reason=LeaveReason.LEAVE, **{"from": where})]

    def drop(self, patient_id: str, last_heard: int) -> list[Event]:
        """The patient's connection went away; they were last heard at `last_heard`."""
        if not self.is_open:
            return []
        patient = self.patients.get(patient_id)
        if patient is None or patient.status not in (Status.WAITING, Status.IN_SESSION):
            return []
        at = max(last_heard, patient.since)
        if patient.status is Status.WAITING:
            self._out(patient_id, patient, at, LeaveReason.DROP)
            return [self._event("left", patient_id, at, reason=LeaveReason.DROP, **{"from": "waiting"})]
        self._move(patient_id, patient, Status.AWAY)
        patient.since = at
        return [self._event("left", patient_id, at, reason=LeaveReason.DROP, **{"from": "session"})]

    def end(self, now: int) -> list[Event]:
        if not self.is_open:
            raise RuleViolation("session_ended", "the session has already ended")
        events: list[Event] = []
        for patient_id, patient in self.patients.items():
            if patient.status in (Status.WAITING, Status.IN_SESSION):
                where = "waiting" if patient.status is Status.WAITING else "session"
                events.append(
                    self._event("left", patient_id, now, reason=LeaveReason.SESSION_END, **{"from": where})
                )
            if patient.status is not Status.OUT:
                self._out(patient_id, patient, now, LeaveReason.SESSION_END)
        self.ended_at = now
        return events

    # -- helpers ------------------------------------------------------------------------

    def _require_open(self) -> None:
        if not self.is_open:
            raise RuleViolation("session_ended", "the session has ended")

    def _require(self, patient_id: str, status: Status, code: str, what: str) -> Patient:
        patient = self.patients.get(patient_id)
        if patient is None or patient.status is not status:
            raise RuleViolation(code, f"patient {patient_id} {what}")
        return patient

    def _move(self, patient_id: str, patient: Patient, status: Status) -> None:
        del self._by_status[patient.status][patient_id]
        patient.status = status
        self._enter(patient_id, status)

    def _enter(self, patient_id: str, status: Status) -> None:
        entered = self._by_status[status]
        entered.pop(patient_id, None)  # at the end, after everyone who entered before
        entered[patient_id] = next(self._entries)

    def _out(self, patient_id: str, patient: Patient, now: int, reason: LeaveReason) -> None:
        self._move(patient_id, patient, Status.OUT)
        patient.since = now
        patient.joined_at = None
        patient.reason = reason

    def _event(self, kind: str, patient_id: str, at: int, **extra: Any) -> Event:
        event: Event = {"type": kind, "session_id": self.session_id, "patient_id": patient_id, "at": at,
                        "seq": self.next_seq}
        self.next_seq += 1
        event.update({k: (str(v) if isinstance(v, StrEnum) else v) for k, v in extra.items()})
        return event
