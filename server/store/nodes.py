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

    async def beat(self, now_ms: int, load: Load) -> None:
        key = keys.node(self.node_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"id": self.node_id, "address": self.address, "started_at": self.started_ms,
                                    "last_seen": now_ms, "sessions": load.sessions,
                                    "participants": load.participants})
            pipe.pexpire(key, self.timeout_ms * 6)  # left by a dead process: gone on its own
            pipe.zadd(keys.nodes(), {self.node_id: now_ms})
            await pipe.execute()

    async def leave(self) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.node(self.node_id))
            pipe.zrem(keys.nodes(), self.node_id)
            await pipe.execute()


async def live_nodes(redis: Redis, now_ms: int, timeout_ms: int) -> list[dict[str, Any]]:
    """The processes heard from within the timeout, oldest first, as GET /api/v1/nodes shows them."""
    ids = await redis.zrangebyscore(keys.nodes(), now_ms - timeout_ms, "+inf")
    out = []
    for node_id in ids:
        raw = await redis.hgetall(keys.node(node_id))
        if not raw:
            continue
        out.append({"id": node_id, "address": raw.get("address", ""), "sessions": int(raw.get("sessions", 0)),
                    "participants": int(raw.get("participants", 0)),
                    "started_at": iso(int(raw["started_at"])), "last_seen": iso(int(raw["last_seen"]))})
    return sorted(out, key=lambda n: str(n["started_at"]))
