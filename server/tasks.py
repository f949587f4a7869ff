"""Helpers for the server's long-running background loops."""

from __future__ import annotations

import asyncio


def stop_if_cancelled() -> None:
    """Re-raise a cancellation that a library swallowed.

    redis-py can turn a cancellation during a command into a connection error, which the
    background loops suppress while Redis is away; a cancelled loop must still stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
