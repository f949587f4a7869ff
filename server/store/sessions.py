"""The session record: the one module that reads or writes `keys.session(...)`.

A session's record holds its group, state and times; who opened and ended it; and the alive
mark (the last moment a process was known to hold its connections, used to drop patients whose
connection did not survive a restart). The admission state of its patients and its attendance
events live under their own keys (see `server.lobby.persist`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.store import keys
from server.store.connection import Redis


@dataclass(frozen=True)
class SessionRecord:
    id: str
    group_id: str
    state: str  # "open" or "ended"
    started_at: int  # ms
    opened_by: str | None = None
    ended_at: int | None = None
    ended_by: str | None = None
    alive_at: int | None = None
    media_node: str | None = None  # the process hosting its media (and live state)
    stored: dict[str, str] = field(default_factory=dict, repr=False, compare=False)  # as kept, for exports

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    @classmethod
    def from_hash(cls, session_id: str, raw: dict[str, str]) -> SessionRecord:
        def ms(name: str) -> int | None:
            value = raw.get(name)
            return int(value) if value else None

        return cls(
            id=session_id, group_id=raw["group_id"], state=raw.get("state", "open"),
            started_at=int(raw["started_at"]), opened_by=raw.get("opened_by") or None,
            ended_at=ms("ended_at"), ended_by=raw.get("ended_by") or None, alive_at=ms("alive_at"),
            media_node=raw.get("media_node") or None, stored=dict(raw),
        )


async def read(redis: Redis, session_id: str) -> SessionRecord | None:
    raw = await redis.hgetall(keys.session(session_id))
    return SessionRecord.from_hash(session_id, raw) if raw else None


async def read_many(redis: Redis, session_ids: list[str]) -> list[SessionRecord]:
    """The records of these sessions that exist, in the order given (one round trip)."""
    if not session_ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for session_id in session_ids:
            pipe.hgetall(keys.session(session_id))
        raws = await pipe.execute()
    return [SessionRecord.from_hash(sid, raw) for sid, raw in zip(session_ids, raws, strict=True) if raw]


async def group_of(redis: Redis, session_id: str) -> str | None:
    group_id = await redis.hget(keys.session(session_id), "group_id")
    return str(group_id) if group_id is not None else None


async def alive_at(redis: Redis, session_id: str) -> int | None:
    raw = await redis.hget(keys.session(session_id), "alive_at")
    return int(raw) if raw else None


async def mark_alive(redis: Redis, session_id: str, at_ms: int) -> None:
    await redis.hset(keys.session(session_id), "alive_at", at_ms)


def write_opened(pipe: Any, group_id: str, session_id: str, now: int, by: str, node: str | None = None) -> None:
    """The session's record and indexes, as one opening writes them (inside a transaction)."""
    record = {"id": session_id, "group_id": group_id, "state": "open", "started_at": str(now), "opened_by": by}
    if node is not None:
        record["media_node"] = node
    pipe.hset(keys.session(session_id), mapping=record)
    pipe.zadd(keys.sessions_by_start(), {session_id: now})
    pipe.zadd(keys.group_sessions(group_id), {session_id: now})


def write_ended(pipe: Any, session_id: str, now: int, by: str) -> None:
    """The end (inside the transaction that ends it): finalised next, or by a sweeper after a crash."""
    pipe.hset(keys.session(session_id), mapping={"state": "ended", "ended_at": str(now), "ended_by": by})
    pipe.sadd(keys.finalise_pending(), session_id)


def delete(pipe: Any, record: SessionRecord) -> None:
    """Remove the session and everything kept under it (retention purge, inside a transaction)."""
    pipe.delete(keys.session(record.id), keys.session_events(record.id), keys.session_patients(record.id),
                keys.billing_session_records(record.id), keys.session_finalised(record.id))
    pipe.zrem(keys.sessions_by_start(), record.id)
    pipe.zrem(keys.group_sessions(record.group_id), record.id)


async def set_media_node(redis: Redis, session_id: str, node: str) -> None:
    """Another process took the session over (its host died or drained)."""
    await redis.hset(keys.session(session_id), "media_node", node)
