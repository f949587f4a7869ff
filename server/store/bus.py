"""The processes of a deployment talk over Redis pub/sub: one channel per process.

A message is a JSON object with a type `t`. `send` is fire-and-forget and keeps order: one
writer task publishes everything this process sends, in the order it was sent, pipelining what
has queued up meanwhile, so frames of one WebSocket reach the other process in the order the
client sent them, and pushes reach the client in the order they were made. `call` is a request
with a reply (`t` "reply", matched by id) or a timeout.

Pub/sub keeps nothing: a message sent while the receiver is not subscribed (its Redis
connection was cut) is lost. Whoever depends on the other side's state therefore re-states it
when the subscription comes back (`on_resubscribed`), and a process that died is noticed by its
heartbeat, not by the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

from server.store import keys
from server.store.connection import UNAVAILABLE, Redis

log = logging.getLogger(__name__)

Message = dict[str, Any]
CALL_TIMEOUT = 15.0  # seconds a request waits for the other process's reply (a whole group
# checking in at once queues on its door's lock there, as it would here)
BATCH = 256  # publishes pipelined at once at most


class BusTimeout(Exception):
    """The other process did not answer in time (dead, or cut off from Redis)."""


class Bus:
    def __init__(self, redis: Redis, node_id: str) -> None:
        self.redis = redis
        self.node_id = node_id
        self.on_message: Callable[[Message], None] = lambda message: None
        self.on_resubscribed: Callable[[], None] = lambda: None
        self.sent = 0
        self.received = 0
        self.lost = 0  # messages a Redis failure kept from being published
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._calls: dict[str, asyncio.Future[Message]] = {}
        self._ids = itertools.count(1)
        self._subscribed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, wait: float = 2.0) -> None:
        """Start the writer and subscribe (returns once subscribed, or after `wait` seconds
        without Redis: the subscription keeps trying)."""
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._write())]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._subscribed.wait()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for future in self._calls.values():
            if not future.done():
                future.set_exception(BusTimeout("the bus stopped"))

    # -- sending ---------------------------------------------------------------------------

    def send(self, node_id: str, message: Message) -> None:
        """Queue a message for another process (or this one); never blocks."""
        message["from"] = self.node_id
        if node_id == self.node_id:
            asyncio.get_running_loop().call_soon(self._deliver, message)
            return
        self._queue.put_nowait((keys.bus(node_id), json.dumps(message, separators=(",", ":"))))

    async def call(self, node_id: str, message: Message, wait: float = CALL_TIMEOUT) -> Message:
        """Send a request and wait for its reply; BusTimeout when none comes in time."""
        call_id = f"{self.node_id}:{next(self._ids)}"
        message["id"] = call_id
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        try:
            self.send(node_id, message)
            async with asyncio.timeout(wait):
                return await future
        except TimeoutError:
            raise BusTimeout(f"no answer from {node_id}") from None
        finally:
            self._calls.pop(call_id, None)

    def reply(self, request: Message, answer: Message) -> None:
        self.send(request["from"], {"t": "reply", "id": request["id"], **answer})

    async def _write(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                if len(batch) == 1:
                    await self.redis.publish(*batch[0])
                else:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for channel, data in batch:
                            pipe.publish(channel, data)
                        await pipe.execute()
                self.sent += len(batch)
            except UNAVAILABLE:
                self.lost += len(batch)
                log.warning("bus: %d messages lost, Redis is unavailable", len(batch))
                await asyncio.sleep(0.2)

    # -- receiving -------------------------------------------------------------------------

    async def _listen(self) -> None:
        first = True
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keys.bus(self.node_id))
                self._subscribed.set()
                if not first:
                    self.on_resubscribed()
                first = False
                while True:
                    raw = await pubsub.get_message(timeout=1.0)
                    if raw is not None and raw.get("type") == "message":
                        self.received += 1
                        self._deliver(json.loads(raw["data"]))
            except UNAVAILABLE:
                await asyncio.sleep(0.5)  # subscribed again, then everyone re-states what matters
            finally:
                with contextlib.suppress(*UNAVAILABLE, RuntimeError):
                    await pubsub.aclose()

    def _deliver(self, message: Message) -> None:
        if message.get("t") == "reply":
            future = self._calls.get(message.get("id", ""))
            if future is not None and not future.done():
                future.set_result(message)
            return
        try:
            self.on_message(message)
        except Exception:
            log.exception("bus: a %r message could not be handled", message.get("t"))
