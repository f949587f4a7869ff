"""Redis behind Sentinel: the URL that names it, and a client that follows the master through a
failover and does not acknowledge a record before a replica holds it.

    redis+sentinel://[[username]:password@]host[:port][,host[:port]...]/service_name[/db][?sentinel_password=...]

The user and password are the Redis servers' (master and replicas); `sentinel_password` is for
Sentinels that require one themselves. A port left out is Sentinel's 26379.

The client asks the Sentinels for the master's address whenever it opens a connection, so after
a failover the next connection attempt reaches the new master (redis-py's `SentinelConnectionPool`).
Every MULTI/EXEC (attendance, admission decisions, the audit chain, billing) is followed by
`WAIT 1` on its connection: the transaction is acknowledged only once one replica holds it, so a
master killed right after an acknowledgement loses nothing that was acknowledged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("porchlight.redis")

SCHEME = "redis+sentinel"
DEFAULT_PORT = 26379
FORM = "redis+sentinel://[:password@]host:port[,host:port...]/service_name[/db]"

# A WAIT that times out (no replica confirmed) means the replica is down or far behind: writes go
# on to the master alone, and the next ones do not wait again for this long (each would cost the
# whole timeout) before trying again.
REPLICA_RETRY_AFTER = 5.0


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)


def is_sentinel_url(url: str) -> bool:
    return url.lower().startswith(SCHEME + "://")


def parse(url: str) -> SentinelUrl:
    """Read a Sentinel URL; a ValueError says what is wrong without repeating any password."""
    if not is_sentinel_url(url):
        raise ValueError(f"a Sentinel URL starts with {SCHEME}://")
    rest = url[len(SCHEME) + 3:]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_host_port(part) for part in hosts.split(","))
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError(f"name the monitored service after the hosts: {FORM}")
    service_name = unquote(parts[0])
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise ValueError(f"the database after the service name is a number, not {parts[1]!r}")
        db = int(parts[1])
    options = parse_qs(query, keep_blank_values=True, strict_parsing=False) if query else {}
    unknown = sorted(set(options) - {"sentinel_password"})
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} (only sentinel_password)")
    sentinel_password = options["sentinel_password"][-1] if "sentinel_password" in options else None
    return SentinelUrl(sentinels, service_name, db, username, password, sentinel_password or None)


def _host_port(part: str) -> tuple[str, int]:
    part = part.strip()
    if part.startswith("["):  # [::1]:26379
        host, _, after = part[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else ""
    else:
        host, _, port_text = part.partition(":")
    if not host:
        raise ValueError(f"each Sentinel is host[:port]: {FORM}")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"a Sentinel port is a number from 1 to 65535, not {port_text!r}")
    return host, int(port_text)


# redis-py is typed as Any here (pyproject: follow_imports = "skip"), hence the ignores on subclasses.
class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):  # type: ignore[misc]
    """Sentinel's pool with the blocking pool's bound: a burst waits for a free connection."""


class ReplicaUnconfirmed(RedisTimeoutError):  # type: ignore[misc]
    """The connection broke after EXEC and before a replica confirmed it: the change may or may
    not survive the failover, so it is not acknowledged (503) and never retried blindly."""


class ReplicatedPipeline(Pipeline):  # type: ignore[misc]
    """A pipeline whose transactions wait for one replica before they count as done."""

    replicas: Replicas

    async def _execute_transaction(self, connection: Any, commands: Any, raise_on_error: Any) -> Any:
        response = await super()._execute_transaction(connection, commands, raise_on_error)
        await self.replicas.confirm(connection)
        return response


class Replicas:
    """When and how long a transaction waits for a replica (`WAIT 1 timeout`)."""

    def __init__(self, timeout: float, clock: Any = time.monotonic) -> None:
        self.timeout_ms = max(1, int(timeout * 1000))
        self._clock = clock
        self._skip_until = 0.0
        self._degraded = False
        self.unconfirmed = 0  # transactions acknowledged with no replica confirming (master alone)

    async def confirm(self, connection: Any) -> None:
        if self._clock() < self._skip_until:
            return
        try:
            await connection.send_command("WAIT", 1, self.timeout_ms)
            confirmed = await connection.read_response()
        except ResponseError as exc:  # e.g. this server is no longer the master: not ours to say
            log.warning("Redis refused WAIT after a transaction (%s)", type(exc).__name__)
            return
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            await connection.disconnect()
            raise ReplicaUnconfirmed("the Redis master went away before a replica confirmed a write") from exc
        if int(confirmed) < 1:
            self.unconfirmed += 1
            if not self._degraded:  # once per episode, not every few seconds while it lasts
                log.warning("no Redis replica confirmed a write within %d ms: records are on the master alone "
                            "until one catches up", self.timeout_ms)
            self._degraded = True
            self._skip_until = self._clock() + REPLICA_RETRY_AFTER
        elif self._degraded:
            log.warning("a Redis replica confirms writes again")
            self._degraded = False


class SentinelRedis(aioredis.Redis):  # type: ignore[misc]
    """The master of a Sentinel-monitored service; closing it closes the Sentinel connections too."""

    sentinel: Sentinel
    replicas: Replicas

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = ReplicatedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.replicas = self.replicas
        return pipe

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        await self.sentinel.aclose()


def connect(url: str, *, pool_size: int, pool_timeout: float, command_timeout: float, retry: Any) -> SentinelRedis:
    """A pooled client for the master that `url` names (see the module's docstring)."""
    where = parse(url)
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": command_timeout, "socket_connect_timeout": command_timeout}
    if where.sentinel_password:
        sentinel_kwargs["password"] = where.sentinel_password
    sentinel = Sentinel(list(where.sentinels), sentinel_kwargs=sentinel_kwargs)
    client: SentinelRedis = sentinel.master_for(
        where.service_name,
        redis_class=SentinelRedis,
        connection_pool_class=BlockingSentinelPool,
        max_connections=pool_size,
        timeout=pool_timeout,
        db=where.db,
        username=where.username,
        password=where.password,
        decode_responses=True,
        socket_timeout=command_timeout,
        socket_connect_timeout=command_timeout,
        health_check_interval=15,
        retry=retry,
    )
    client.sentinel = sentinel
    # WAIT must answer before the command timeout, or a slow replica would read as a dead master.
    client.replicas = Replicas(min(0.5, command_timeout / 2))
    return client


def probe_client(client: aioredis.Redis, timeout: float, retry: Any) -> aioredis.Redis | None:
    """For a Sentinel client, a one-connection client of its own to the same master (the health
    check's); None for any other client."""
    pool = client.connection_pool
    if not isinstance(pool, SentinelConnectionPool):
        return None
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in ("connection_pool", "connection_class")}
    kwargs.update(socket_timeout=timeout, socket_connect_timeout=timeout, retry=retry, retry_on_error=[],
                  health_check_interval=0)
    probe: aioredis.Redis = pool.sentinel_manager.master_for(
        pool.service_name, connection_pool_class=BlockingSentinelPool, max_connections=1, timeout=timeout, **kwargs)
    return probe
