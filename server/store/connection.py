"""Opening the Redis client that every module shares, and the health check's own connection."""

from __future__ import annotations

import asyncio
from typing import Any, TypeAlias

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from server.store import sentinel

Redis: TypeAlias = aioredis.Redis

# Errors that mean "Redis is not reachable right now": answered with 503, never half-applied.
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)

POOL_SIZE = 50
POOL_TIMEOUT = 2.0
COMMAND_TIMEOUT = 2.0
PROBE_TIMEOUT = 1.0


class _HiredisPacking:
    """Commands packed by hiredis in C, as redis-py's own synchronous client does, instead of the
    asyncio client's packer in Python: a year's attendance report asks for 100,000 records by
    key, and packing those keys was half the client's time reading them. Only commands of text,
    bytes and whole numbers (the same bytes either way, tests/test_redis_packing.py); anything
    else is packed as before."""

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        for arg in args:
            kind = type(arg)
            if kind is not str and kind is not bytes and kind is not int:
                return super().pack_command(*args)  # type: ignore[misc, no-any-return]
        first = args[0]
        if isinstance(first, str):
            args = tuple(first.encode().split()) + args[1:]
        elif isinstance(first, bytes) and b" " in first:
            args = tuple(first.split()) + args[1:]
        return [hiredis.pack_command(args)]


class _Connection(_HiredisPacking, aioredis.Connection):  # type: ignore[misc]
    pass


class _UnixConnection(_HiredisPacking, aioredis.UnixDomainSocketConnection):  # type: ignore[misc]
    pass


class _SSLConnection(_HiredisPacking, aioredis.SSLConnection):  # type: ignore[misc]
    pass


_PACKING: dict[type[Any], type[Any]] = {aioredis.Connection: _Connection,
                                        aioredis.UnixDomainSocketConnection: _UnixConnection,
                                        aioredis.SSLConnection: _SSLConnection}


def connect(url: str, pool_size: int = POOL_SIZE, pool_timeout: float = POOL_TIMEOUT,
            command_timeout: float = COMMAND_TIMEOUT) -> Redis:
    """A pooled client; it reconnects by itself when Redis comes back.

    At most `pool_size` connections: a burst beyond that waits up to `pool_timeout` for a free
    one instead of failing at once (503 only after the wait). A command unanswered for
    `command_timeout` fails (503) and is not retried, so a hung Redis costs a request that
    long, not a multiple of it; only a refused or reset connection (a restart) is retried.
    A `redis+sentinel://` URL follows the master through a failover (`server.store.sentinel`).
    """
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2, supported_errors=(RedisConnectionError,))
    if sentinel.is_sentinel_url(url):
        return sentinel.connect(url, pool_size=pool_size, pool_timeout=pool_timeout,
                                command_timeout=command_timeout, retry=retry)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=pool_timeout,
        decode_responses=True,
        socket_timeout=command_timeout,
        socket_connect_timeout=command_timeout,
        health_check_interval=15,
        retry=retry,
    )
    pool.connection_class = _PACKING.get(pool.connection_class, pool.connection_class)
    return aioredis.Redis.from_pool(pool)


class RedisProbe:
    """Is Redis answering? One connection of its own, so a health check never waits behind a
    busy pool, and at most one PING in flight: checks that arrive meanwhile share its answer."""

    def __init__(self, client: Redis, timeout: float = PROBE_TIMEOUT) -> None:
        # A connection Redis dropped (a restart) is made again at once; a hang is never retried.
        retry = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
        self._timeout = timeout
        self._pending: asyncio.Task[bool] | None = None
        if (own := sentinel.probe_client(client, timeout, retry)) is not None:
            self._client: Redis = own
            return
        shared = client.connection_pool
        kwargs: dict[str, Any] = {
            **shared.connection_kwargs,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": retry,
            "retry_on_error": [],
            "health_check_interval": 0,
        }
        pool = aioredis.BlockingConnectionPool(max_connections=1, timeout=timeout,
                                               connection_class=shared.connection_class, **kwargs)
        self._client = aioredis.Redis.from_pool(pool)

    async def up(self) -> bool:
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._ping())
        # shield: one caller going away (a client hanging up) does not cancel the others' answer
        return await asyncio.shield(self._pending)

    async def _ping(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.ping()
        except (*UNAVAILABLE, TimeoutError):
            return False
        return True

    async def aclose(self) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
        await self._client.aclose()
