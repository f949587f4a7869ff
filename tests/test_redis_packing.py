"""Commands packed by hiredis are the bytes redis-py's own packer makes, and anything it would
refuse is refused the same way; a real Redis answers them."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from server.store.connection import Redis, connect

URLS = ["redis://127.0.0.1:6399/0", "unix:///tmp/porchlight-not-a-socket.sock?db=1"]


def packed(connection: Any, args: tuple[Any, ...]) -> str | bytes:
    try:
        return b"".join(bytes(chunk) for chunk in connection.pack_command(*args))
    except Exception as exc:
        return f"error: {type(exc).__name__}"


name = st.sampled_from(["HMGET", "SET", "CONFIG GET", "client list", b"ZADD", b"OBJECT ENCODING"])
argument = st.one_of(st.text(), st.binary(), st.integers(-(2**70), 2**70), st.booleans(), st.none(),
                     st.floats(allow_nan=False), st.binary().map(memoryview), st.just("\ud800"))


@settings(max_examples=400, deadline=None)
@given(command=name, args=st.lists(argument, max_size=8), which=st.sampled_from(URLS))
def test_packing_is_byte_for_byte_redis_pys(command: Any, args: list[Any], which: str) -> None:
    pool = connect(which).connection_pool
    ours = pool.make_connection()
    theirs = aioredis.Redis.from_url(which, decode_responses=True).connection_pool.make_connection()
    assert type(ours) is not type(theirs)  # this is the packing under test, not redis-py's
    assert packed(ours, (command, *args)) == packed(theirs, (command, *args))


async def test_a_real_redis_answers_commands_packed_by_hiredis(redis: Redis) -> None:
    keys = [f"k:{i}:\u00e9" for i in range(3000)]  # past redis-py's 6,000-byte chunks
    await redis.hset("h", mapping={k: str(i) for i, k in enumerate(keys)})
    assert await redis.hmget("h", keys) == [str(i) for i in range(3000)]
    assert await redis.zadd("z", {"a": 1.5, "b": -2}) == 2  # floats: redis-py's own packer
    assert await redis.zrangebyscore("z", "-inf", "+inf", withscores=True) == [("b", -2.0), ("a", 1.5)]
