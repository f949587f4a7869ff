"""The processes of a deployment, as Redis knows them: each heartbeats its address and load;
one silent for PORCHLIGHT_NODE_TIMEOUT_SECONDS is no longer listed (and, with scale-out, loses
its sessions to live ones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.clock import iso
from server.store import keys
from server.store.connection import Redis


@dataclass(frozen=True)
class Load:
    sessions: int  # sessions whose media this process hosts
    participants: int  # people connected to it in those sessions


class NodeRegistry:
    def __init__(self, redis: Redis, node_id: str, address: str, started_ms: int, timeout_ms: int) -> None:
        self.redis = redis
        self.node_id = node_id
        self.address = address
        self.started_ms = started_ms
        self.timeout_ms = timeout_ms

    async def beat(self, now_ms: int, load: Load, draining: bool = False) -> None:
        key = keys.node(self.node_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"id": self.node_id, "address": self.address, "started_at": self.started_ms,
                                    "last_seen": now_ms, "sessions": load.sessions,
                                    "participants": load.participants, "draining": int(draining)})
            pipe.pexpire(key, self.timeout_ms * 6)  # left by a dead process: gone on its own
            pipe.zadd(keys.nodes(), {self.node_id: now_ms})
            await pipe.execute()

    async def leave(self) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.node(self.node_id))
            pipe.zrem(keys.nodes(), self.node_id)
            await pipe.execute()


async def live_nodes(redis: Redis, now_ms: int, timeout_ms: int, raw: bool = False) -> list[dict[str, Any]]:
    """The processes heard from within the timeout, oldest first, as GET /api/v1/nodes shows them
    (`raw`: times in ms, and whether each is draining)."""
    ids = await redis.zrangebyscore(keys.nodes(), now_ms - timeout_ms, "+inf")
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for node_id in ids:
            pipe.hgetall(keys.node(node_id))
        hashes = await pipe.execute()
    out: list[tuple[int, str, dict[str, Any]]] = []
    for node_id, fields in zip(ids, hashes, strict=True):
        if not fields:
            continue
        started, seen = int(fields["started_at"]), int(fields["last_seen"])
        node: dict[str, Any] = {"id": node_id, "address": fields.get("address", ""),
                                "sessions": int(fields.get("sessions", 0)),
                                "participants": int(fields.get("participants", 0)),
                                "started_at": started if raw else iso(started), "last_seen": seen if raw else iso(seen)}
        if raw:
            node["draining"] = fields.get("draining") == "1"
        out.append((started, node_id, node))
    # By the start in ms, not the text shown (whole seconds): two processes started in the same
    # second are still listed in the order they started.
    return [node for _, _, node in sorted(out, key=lambda item: item[:2])]


async def last_seen(redis: Redis, node_id: str) -> int | None:
    """When a process last beat (ms), while Redis still remembers it."""
    value = await redis.hget(keys.node(node_id), "last_seen")
    return int(value) if value else None
