"""Waking delivery workers when records are queued, within a process and across processes.

Finalisation, a correction or a replay queues records in an outbox channel and then sets that
channel's `Wake`. A worker on the same event loop (PORCHLIGHT_DELIVERY=inline) waits on
`Wake.event`; a delivery process of its own (server/deliver.py) hears the wake over Redis
pub/sub (`listen`). Pub/sub keeps nothing, and that is enough here: the records are already in
Redis and every worker also polls (`DeliveryWorker.poll_seconds`, at most 1 s), so a wake lost to
a cut connection or a restarting delivery process costs at most one poll interval, never a record.

Publishing is coalesced: the wakes set while one publish is under way become one more publish
after it, so eight sessions finalised at once cost a publish or two, not eight round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.store import keys
from server.store.connection import UNAVAILABLE, Redis

log = logging.getLogger(__name__)


class Wake:
    """Set after records are queued in `channel`: wakes this process's worker, and with `redis`
    the delivery processes listening on the channel's wake."""

    def __init__(self, channel: str, redis: Redis | None = None) -> None:
        self.channel = channel
        self.redis = redis  # None: only this process's worker hears it
        self.event = asyncio.Event()
        self._publishing: asyncio.Task[None] | None = None
        self._again = False

    def set(self) -> None:
        self.event.set()
        if self.redis is None:
            return
        if self._publishing is not None and not self._publishing.done():
            self._again = True  # one more publish once this one is out
            return
        self._publishing = asyncio.get_running_loop().create_task(self._publish(self.redis))

    async def _publish(self, redis: Redis) -> None:
        while True:
            self._again = False
            try:
                await redis.publish(keys.outbox_wake(self.channel), "1")
            except UNAVAILABLE:  # the delivery processes find the records at their next poll
                log.debug("%s wake not published: redis unavailable", self.channel)
            if not self._again:
                return


async def listen(redis: Redis, events: dict[str, asyncio.Event], subscribed: asyncio.Event | None = None) -> None:
    """Set `events[channel]` whenever a wake for `channel` is published, until cancelled. After a
    lost connection it subscribes again and sets every event once: wakes published meanwhile
    were lost, and the workers look at once instead of at their next poll."""
    first = True
    while True:
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*(keys.outbox_wake(channel) for channel in events))
            by_name = {keys.outbox_wake(channel): event for channel, event in events.items()}
            if subscribed is not None:
                subscribed.set()
            if not first:
                for event in events.values():
                    event.set()
            first = False
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "message":
                    woken = by_name.get(message["channel"])
                    if woken is not None:
                        woken.set()
        except UNAVAILABLE:
            await asyncio.sleep(0.5)
        finally:
            with contextlib.suppress(*UNAVAILABLE, RuntimeError):
                await pubsub.aclose()
