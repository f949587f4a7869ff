"""Who is connected to one group's door, and what reaches them.

Presence is in-process: the WebSockets this process holds for a group, with the push
coalescer that turns a burst of changes into one `waiting_list` and one `roster` frame. It
knows connections, not rules: what a push contains is the door's (`render`). A later
cross-process bus implements the same small surface (send, broadcast, schedule, close).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from server.clock import iso
from server.lobby.machine import Session, Status
from server.lobby.peer import Peer
from server.lobby.remote import RemotePeer
from server.metrics import Metrics

PUSH_DELAY = 0.02  # seconds: bursts of arrivals are coalesced into one waiting_list push
# Pushes take at most about this share of the event loop: after a push that took 6 ms (a roster
# to 200 sockets) the next waits 60 ms, so a stream of admissions shares one push among several
# instead of each paying for the last one's. A group's usual push (< 2 ms) keeps PUSH_DELAY.
PUSH_SHARE = 0.1
PUSH_DELAY_MAX = 0.25  # seconds: the longest a change waits for its push

# What a push consists of: the recipients and the frame (or its JSON text), or None when there
# is nobody to tell.
Render = Callable[[str], "tuple[Iterable[Peer], dict[str, Any] | str] | None"]


@dataclass
class Staff:
    user_id: str
    name: str
    role: str


class Presence:
    def __init__(self, metrics: Metrics, render: Render) -> None:
        self.metrics = metrics
        self.render = render
        self.patients: dict[str, Peer] = {}  # the live connection of each patient
        self.staff: dict[Peer, Staff] = {}  # staff taking part in the open session
        self.watchers: dict[Peer, Staff] = {}  # staff watching the waiting room
        self.names: dict[str, str] = {}  # patient id -> display name
        self.renamed: set[str] = set()  # whose name changed since the last waiting list (see WaitingList)
        self._pending: set[str] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._quiet_until = 0.0  # loop time before which no push starts (see PUSH_SHARE)

    # -- who -----------------------------------------------------------------------------

    def name(self, patient_id: str) -> str:
        return self.names.get(patient_id, "Patient")

    def set_name(self, patient_id: str, name: str) -> None:
        if self.names.get(patient_id) != name:
            self.names[patient_id] = name
            self.renamed.add(patient_id)

    def unique_staff(self) -> list[Staff]:
        seen: dict[str, Staff] = {}
        for staff in self.staff.values():
            seen.setdefault(staff.user_id, staff)
        return list(seen.values())

    def staff_conns(self) -> set[Peer]:
        return set(self.staff) | set(self.watchers)

    def admitted(self, session: Session | None) -> Iterator[tuple[str, Peer]]:
        """Admitted patients who are connected, with their connection."""
        if session is not None:
            for pid in session.with_status(Status.IN_SESSION):
                if (conn := self.patients.get(pid)) is not None:
                    yield pid, conn

    def in_session(self, session: Session | None) -> list[Peer]:
        """Who gets rosters: staff in the session, and admitted patients once told so (a push
        may fire while an admission is being committed; its `admitted` frame comes first)."""
        return list(self.staff) + [conn for _, conn in self.admitted(session) if conn.told_admitted]

    def everyone(self) -> list[Peer]:
        return list(self.patients.values()) + list(self.staff) + list(self.watchers)

    # -- what reaches them ---------------------------------------------------------------

    def send(self, conn: Peer, message: dict[str, Any]) -> None:
        self.metrics.ws_messages["out"] += 1
        conn.send(message)

    def send_text(self, conn: Peer, text: str) -> None:
        self.metrics.ws_messages["out"] += 1
        conn.send_text(text)

    def broadcast(self, conns: Iterable[Peer], message: dict[str, Any] | str) -> None:
        # Encoded once, not once per recipient.
        text = message if isinstance(message, str) else json.dumps(message, separators=(",", ":"))
        elsewhere: dict[str, list[RemotePeer]] = {}  # sockets other processes hold, by process
        for conn in conns:
            self.metrics.ws_messages["out"] += 1
            if isinstance(conn, RemotePeer):
                elsewhere.setdefault(conn.node_id, []).append(conn)
            else:
                conn.send_text(text)
        for peers in elsewhere.values():
            RemotePeer.send_text_to_all(peers, text)  # one bus message per process, not per socket

    def schedule(self, *what: str) -> None:
        """Coalesce pushes ("waiting_list", "roster"): a burst of changes sends one of each."""
        self._pending.update(what)
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._handle = loop.call_later(max(PUSH_DELAY, self._quiet_until - loop.time()), self._push)

    def _push(self) -> None:
        self._handle = None
        pending, self._pending = self._pending, set()
        started = time.perf_counter()
        for what in ("waiting_list", "roster"):
            if what in pending and (rendered := self.render(what)) is not None:
                self.broadcast(*rendered)
        spent = time.perf_counter() - started
        self._quiet_until = asyncio.get_running_loop().time() + min(PUSH_DELAY_MAX, spent / PUSH_SHARE)

    def close_all(self, code: int, reason: str, held_here_only: bool = False) -> None:
        """Close every connection; with `held_here_only`, only the sockets this process holds
        (a process shutting down leaves the others' sockets to them: they move with the group)."""
        for conn in self.everyone():
            if not (held_here_only and isinstance(conn, RemotePeer)):
                conn.close(code, reason)


# -- the views clients see -----------------------------------------------------------------


class WaitingList:
    """The `waiting_list` frame's JSON text, kept between pushes and changed where the waiting
    room changed: with 5,000 waiting, encoding every entry for every push took 27 ms of the event
    loop, and every admission causes a push. The entries stay in the frame's order (by waiting
    time, then id), each with its JSON; a push finds who left and who came (by their entry into
    the waiting room, so who left and came back is both) and joins the texts."""

    def __init__(self) -> None:
        self._reset(None)

    def _reset(self, session: Session | None) -> None:
        self._session = session  # whose entries are kept (a reload from Redis makes a new one)
        self._kept: dict[str, tuple[int, int]] = {}  # patient id -> (their entry into the waiting room, since)
        self._last = -1  # the latest entry seen
        self._order: list[tuple[int, str]] = []  # (since, patient id): the frame's order
        self._parts: list[str] = []  # each one's JSON, in that order

    def frame(self, session: Session | None, early: dict[str, tuple[int, str | None]],
              name_of: Callable[[str], str], renamed: Iterable[str] = ()) -> str:
        """The frame now; `renamed`: who may have a new name since the last frame."""
        if session is None:  # before the session opens: a few early check-ins, encoded whole
            self._reset(None)
            rows = sorted((at, pid) for pid, (at, _) in early.items())
            parts = [_entry(pid, since, name_of(pid)) for since, pid in rows]
        else:
            if session is not self._session:
                self._reset(session)
            self._update(session, name_of, renamed)
            parts = self._parts
        return '{"type":"waiting_list","waiting":[' + ",".join(parts) + "]}"

    def _update(self, session: Session, name_of: Callable[[str], str], renamed: Iterable[str]) -> None:
        waiting = session.waiting()  # in the order of their entries, which only grow
        came = []
        for pid in reversed(waiting):
            if waiting[pid] <= self._last:
                break
            came.append(pid)
        if came:
            self._last = waiting[came[0]]
        gone = [pid for pid in came if pid in self._kept]  # left and came back: a new entry
        if len(self._kept) + len(came) - len(gone) > len(waiting):  # and some left for good
            gone += self._kept.keys() - waiting.keys()
        for pid in gone:
            i = bisect.bisect_left(self._order, (self._kept.pop(pid)[1], pid))
            del self._order[i], self._parts[i]
        for pid in renamed:
            if (kept := self._kept.get(pid)) is not None:
                self._parts[bisect.bisect_left(self._order, (kept[1], pid))] = _entry(pid, kept[1], name_of(pid))
        rows = []
        for pid in came:
            since = session.patients[pid].since
            self._kept[pid] = (waiting[pid], since)
            rows.append((since, pid))
        if len(rows) > 64:  # many at once (the first frame): sorted in with the rest
            parts = dict(zip(self._order, self._parts, strict=True))
            self._order = sorted(self._order + rows)
            self._parts = [parts.get(row) or _entry(row[1], row[0], name_of(row[1])) for row in self._order]
            return
        for since, pid in rows:
            i = bisect.bisect(self._order, (since, pid))
            self._order.insert(i, (since, pid))
            self._parts.insert(i, _entry(pid, since, name_of(pid)))


def _entry(pid: str, since: int, name: str) -> str:
    return json.dumps({"patient_id": pid, "display_name": name, "waiting_since": iso(since)}, separators=(",", ":"))


def participants(session: Session | None, presence: Presence,
                 extras: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
    """The roster: staff in the session, then admitted patients by when they joined; `extras`
    adds what each one's entry says of them now (media state, a raised hand)."""
    people: list[dict[str, Any]] = [{"id": s.user_id, "display_name": s.name, "role": s.role, **extras(s.user_id)}
                                    for s in presence.unique_staff()]
    if session is not None:
        present = session.with_status(Status.IN_SESSION)
        present.sort(key=lambda pid: session.patients[pid].joined_at or 0)
        people += [{"id": pid, "display_name": presence.name(pid), "role": "patient", **extras(pid)}
                   for pid in present]
    return people
