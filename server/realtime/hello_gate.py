"""WebSockets that have not said hello yet, capped per client address and in all.

An open socket costs the server memory before it has proved anything (about 20 KB; 4,000 idle
ones took RSS from 85 to 171 MB). Past a cap, a new socket is refused before the upgrade with
429 `too_many_connections`; the browser's LiveSocket retries with backoff. A socket stops
counting once it has said hello (its connection is registered at a door), once it closes, and
at the hello deadline, when the server closes a socket that has not. So patients behind one
clinic NAT are limited only in how many may be between connecting and hello at one moment.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from server.api.common import client_ip
from server.errors import ApiError
from server.lobby.registry import Lobby
from server.realtime.connection import Connection


class _Arrival:
    __slots__ = ("address", "peer", "at", "counted")

    def __init__(self, address: str, peer: Any, at: float) -> None:
        self.address = address
        self.peer = peer  # the TCP peer (host, port): how its registered connection is recognised
        self.at = at
        self.counted = True


class HelloGate:
    def __init__(self, per_address: int, total: int, deadline: float) -> None:
        self.per_address = per_address
        self.total = total
        self.deadline = deadline
        self._by_address: dict[str, set[_Arrival]] = {}
        self._count = 0
        self._order: deque[_Arrival] = deque()  # arrival order, to expire at the hello deadline
        self._registered_seen = -1

    @property
    def waiting_for_hello(self) -> int:
        """Sockets counted now. A hello is noticed only when a cap is reached (then at once), so
        this may include sockets that said hello since, for at most the hello deadline."""
        return self._count

    def enter(self, request: web.Request, lobby: Lobby) -> None:
        """Count the socket this request opens, until hello or its end; 429 when over a cap."""
        now = asyncio.get_running_loop().time()
        address = client_ip(request)
        self._expire(now)
        if self._full(address):
            self._forget_hellos(lobby)
            if self._full(address):
                raise ApiError(429, "too_many_connections",
                               "too many connections are waiting to say hello; try again shortly")
        transport = request.transport
        arrival = _Arrival(address, transport.get_extra_info("peername") if transport else None, now)
        self._by_address.setdefault(address, set()).add(arrival)
        self._count += 1
        self._order.append(arrival)
        task = asyncio.current_task()  # the request's own task: done when the handler returns
        if task is not None:
            task.add_done_callback(lambda _: self._remove(arrival))

    def _full(self, address: str) -> bool:
        return self._count >= self.total or len(self._by_address.get(address, ())) >= self.per_address

    def _remove(self, arrival: _Arrival) -> None:
        if not arrival.counted:
            return
        arrival.counted = False
        same = self._by_address.get(arrival.address)
        if same is not None:
            same.discard(arrival)
            if not same:
                del self._by_address[arrival.address]
        self._count -= 1

    def _expire(self, now: float) -> None:
        while self._order and (not self._order[0].counted or now - self._order[0].at >= self.deadline):
            self._remove(self._order.popleft())

    def _forget_hellos(self, lobby: Lobby) -> None:
        """Stop counting sockets whose hello was accepted. Only at a cap, and only when the number
        of registered connections changed since last time: a flood of refused sockets does not
        make every one of them walk all connections."""
        registered = sum(len(d.patient_conns) + len(d.staff_in_session) + len(d.watchers)
                         for d in lobby.doors.values())
        if registered == self._registered_seen:
            return
        self._registered_seen = registered
        peers = {conn.ws.get_extra_info("peername") for conn in _connections(lobby)}
        peers.discard(None)
        for arrival in [a for same in self._by_address.values() for a in same if a.peer in peers]:
            self._remove(arrival)


def _connections(lobby: Lobby) -> Iterator[Connection]:
    for door in list(lobby.doors.values()):
        yield from list(door.patient_conns.values())
        yield from list(door.staff_in_session)
        yield from list(door.watchers)
