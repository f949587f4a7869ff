"""Which process hosts each group's live state: one owner at a time, held by a lease.

The owner of a group is a node id under `keys.group_owner`, set once with SET NX and a lease of
PORCHLIGHT_NODE_TIMEOUT_SECONDS that only the owner renews (a compare-and-expire script). A
process that stops renewing (it died, or stalled for the whole timeout) loses its groups when
the lease lapses; the next process to need one claims it for the least-loaded live node.
"""

from __future__ import annotations

from collections.abc import Iterable

from server.store import keys
from server.store.connection import Redis

# KEYS: the owner keys; ARGV[1] the node, ARGV[2] the lease (ms). Returns the keys' indexes
# (1-based) this node no longer owns.
_RENEW = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  else
    table.insert(lost, i)
  end
end
return lost
"""

# KEYS: the owner keys; ARGV[1] the node. Deletes only what this node owns.
_RELEASE = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""


async def owner(redis: Redis, group_id: str) -> str | None:
    value: str | None = await redis.get(keys.group_owner(group_id))
    return value


async def owners(redis: Redis, group_ids: list[str]) -> dict[str, str | None]:
    if not group_ids:
        return {}
    values = await redis.mget([keys.group_owner(g) for g in group_ids])
    return dict(zip(group_ids, values, strict=True))


async def claim(redis: Redis, group_id: str, node_id: str, lease_ms: int) -> str:
    """Make `node_id` the owner unless the group has a live owner already; return the owner."""
    key = keys.group_owner(group_id)
    if await redis.set(key, node_id, nx=True, px=lease_ms):
        return node_id
    current: str | None = await redis.get(key)
    if current is None:  # lapsed between the two commands: try once more
        return await claim(redis, group_id, node_id, lease_ms)
    return current


async def renew(redis: Redis, node_id: str, group_ids: Iterable[str], lease_ms: int) -> list[str]:
    """Extend this node's leases; return the groups it turned out not to own any more."""
    ids = list(group_ids)
    if not ids:
        return []
    lost = await redis.eval(_RENEW, len(ids), *[keys.group_owner(g) for g in ids], node_id, lease_ms)
    return [ids[int(i) - 1] for i in lost]


async def release(redis: Redis, node_id: str, group_ids: Iterable[str]) -> None:
    ids = list(group_ids)
    if ids:
        await redis.eval(_RELEASE, len(ids), *[keys.group_owner(g) for g in ids], node_id)
