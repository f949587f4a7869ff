"""Append-only, hash-chained audit log.

Each entry holds the hash of the entry before it; the entry's own hash is SHA-256 over its
canonical JSON (without the hash). Changing, removing or reordering any entry breaks the
chain from there on, which `porchlight audit verify` reports.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from redis.exceptions import WatchError

from server.clock import Clock, iso, to_ms
from server.store import keys
from server.store.connection import Redis

GENESIS = "0" * 64


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Action:
    """One audited action: who did what, with which details."""

    action: str
    actor: str | None
    details: dict[str, Any]


class AuditLog:
    def __init__(self, redis: Redis, clock: Clock) -> None:
        self.redis = redis
        self.clock = clock
        self._lock = asyncio.Lock()

    async def append(self, action: str, actor: str | None, **details: Any) -> dict[str, Any]:
        """Record one action. `actor` is a user id, `patient:<id>`, or None for the system."""
        return (await self.commit_with([Action(action, actor, details)]))[0]

    async def commit_with(
        self, actions: list[Action], write: Callable[[Any], None] | None = None
    ) -> list[dict[str, Any]]:
        """Append `actions` and run `write(pipe)` in one MULTI/EXEC: the change and its audit
        entries are committed together or not at all (a crash cannot separate them)."""
        entries = await self.commit_if(actions, write)
        assert entries is not None
        return entries

    async def commit_if(
        self, actions: list[Action], write: Callable[[Any], None] | None = None,
        watch: tuple[str, ...] = (), ready: Callable[[Any], Awaitable[bool]] | None = None,
    ) -> list[dict[str, Any]] | None:
        """`commit_with`, on a condition: `ready(pipe)` reads the `watch` keys (WATCHed with the
        log's head) and says whether to commit; None when it says no, on the first try or after
        another client changed a watched key (then it is asked again)."""
        async with self._lock:  # appends from this process queue here; WATCH guards against others
            while True:
                async with self.redis.pipeline(transaction=True) as pipe:
                    try:
                        await pipe.watch(keys.audit_head(), *watch)
                        if ready is not None and not await ready(pipe):
                            return None
                        head = await pipe.get(keys.audit_head())
                        seq, prev = (0, GENESIS) if head is None else _split_head(head)
                        entries = []
                        at = iso(to_ms(self.clock.now()))  # the commit's time, for each of its entries
                        for action in actions:
                            seq += 1
                            entry: dict[str, Any] = {
                                "seq": seq,
                                "at": at,
                                "action": action.action,
                                "actor": action.actor,
                                "details": action.details,
                                "prev": prev,
                            }
                            entry["hash"] = prev = entry_hash(entry)
                            entries.append(entry)
                        pipe.multi()
                        if write is not None:
                            write(pipe)
                        if entries:
                            pipe.rpush(keys.audit_log(), *[json.dumps(e, sort_keys=True) for e in entries])
                            pipe.set(keys.audit_head(), f"{seq}:{prev}")
                        await pipe.execute()
                        return entries
                    except WatchError:
                        continue

    async def entries(self, start: int = 0, end: int = -1) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in await self.redis.lrange(keys.audit_log(), start, end)]

    async def verify(self, batch: int = 1000) -> VerifyResult:
        checked = 0
        prev = GENESIS
        offset = 0
        while True:
            raws = await self.redis.lrange(keys.audit_log(), offset, offset + batch - 1)
            if not raws:
                break
            for problem in _check(raws, prev, offset):
                return VerifyResult(False, checked, problem)
            checked += len(raws)
            prev = json.loads(raws[-1])["hash"]
            offset += batch
        head = await self.redis.get(keys.audit_head())
        if head is not None and _split_head(head)[1] != prev:
            return VerifyResult(False, checked, "the head does not match the last entry (entries removed)")
        return VerifyResult(True, checked, None)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    problem: str | None


def _split_head(head: str) -> tuple[int, str]:
    seq, digest = head.split(":", 1)
    return int(seq), digest


def _check(raws: list[str], prev: str, offset: int) -> Iterator[str]:
    for index, raw in enumerate(raws, start=offset):
        try:
            entry = json.loads(raw)
        except ValueError:
            yield f"entry {index + 1} is not JSON"
            return
        if entry.get("prev") != prev:
            yield f"entry {index + 1} does not follow entry {index} (chain broken)"
            return
        if entry.get("seq") != index + 1:
            yield f"entry {index + 1} has sequence number {entry.get('seq')}"
            return
        if entry_hash(entry) != entry.get("hash"):
            yield f"entry {index + 1} was altered (hash mismatch)"
            return
        prev = entry["hash"]
