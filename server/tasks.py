"""Helpers for the server's long-running background loops."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def stop_if_cancelled() -> None:
    """Re-raise a cancellation that a library swallowed.

    redis-py can turn a cancellation during a command into a connection error, which the
    background loops suppress while Redis is away; a cancelled loop must still stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Background:
    """The long-running tasks of one server process (its rounds, workers and each socket's
    heartbeat), named and kept in one place: each is stopped with its owner, and a test that
    plays a killed process stops them all at once (`halt`)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=f"porchlight {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def running(self) -> list[str]:
        return sorted(task.get_name() for task in self._tasks)

    def halt(self) -> None:
        """Cancel every background task, as a process that is killed stops all of them at once."""
        for task in list(self._tasks):
            task.cancel()
