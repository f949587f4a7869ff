"""WebSockets that have not said hello yet, capped per client address and in all.

An open socket costs the server memory before it has proved anything (about 20 KB; 4,000 idle
ones took RSS from 85 to 171 MB). Past a cap, a new socket is refused before the upgrade with
429 `too_many_connections`; the browser's LiveSocket retries with backoff. A socket stops
counting once its hello is accepted, once it closes, and
at the hello deadline, when the server closes a socket that has not. So patients behind one
clinic NAT are limited only in how many may be between connecting and hello at one moment.
"""

from __future__ import annotations

import asyncio
from collections import deque

from server.errors import ApiError


class _Arrival:
    __slots__ = ("address", "at", "counted")

    def __init__(self, address: str, at: float) -> None:
        self.address = address
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

    @property
    def waiting_for_hello(self) -> int:
        """Sockets counted now: open, no hello accepted yet, younger than the hello deadline."""
        return self._count

    def enter(self, address: str) -> _Arrival:
        """Count a socket from `address` until `passed`, its end or the hello deadline; 429 when
        over a cap. The count ends with the calling task (the request's handler) at the latest."""
        now = asyncio.get_running_loop().time()
        self._expire(now)
        if self._full(address):
            raise ApiError(429, "too_many_connections",
                           "too many connections are waiting to say hello; try again shortly")
        arrival = _Arrival(address, now)
        self._by_address.setdefault(address, set()).add(arrival)
        self._count += 1
        self._order.append(arrival)
        task = asyncio.current_task()  # the request's own task: done when the handler returns
        if task is not None:
            task.add_done_callback(lambda _: self._remove(arrival))
        return arrival

    def passed(self, arrival: _Arrival) -> None:
        """Its hello was accepted: it no longer counts."""
        self._remove(arrival)

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
