"""Sign-in attempts, limited three ways; each attempt is reserved before its password is hashed.

- per client address: `per_address` attempts a window, then 429 until the window ends;
- per username from one address: `per_user_at_address` attempts, then that address is locked
  out of that username for `lockout`, doubling with each further failure up to `lockout_max`;
  the real user elsewhere is not affected;
- per username from every address: after `user_slow_after` attempts a window, attempts at it
  are spaced out (1 s, doubling up to `user_slow_max`), never locked; except from an address
  the username signed in from in the last KNOWN_ADDRESS_DAYS, so attempts from elsewhere
  cannot keep the real user at their usual address waiting.

A reservation is checked and counted in one Lua script, so a burst of concurrent attempts
cannot all pass the check before any is counted. A successful sign-in gives its reservation
back (and clears that address's record for the username); a failed one keeps it as the failure.
Times come from the injected clock; key expiry only clears up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from server.clock import Clock
from server.store import keys
from server.store.connection import Redis

USER_SLOW_FIRST_SECONDS = 1.0
KNOWN_ADDRESS_DAYS = 30
KNOWN_ADDRESSES_KEPT = 10  # per username, the most recent


@dataclass(frozen=True)
class LoginLimits:
    per_address: int
    per_user_at_address: int
    window_seconds: float
    lockout_seconds: float
    lockout_max_seconds: float
    user_slow_after: int
    user_slow_max_seconds: float


@dataclass(frozen=True)
class Refusal:
    """Why an attempt may not be made now: "address", "user_at_address" or "user"."""

    reason: str
    retry_after_seconds: int


class LoginLimiter:
    def __init__(self, redis: Redis, clock: Clock, limits: LoginLimits) -> None:
        self.redis = redis
        self.clock = clock
        self.limits = limits

    async def reserve(self, ip: str, username: str) -> Refusal | None:
        """Count one attempt now, or say why not (nothing is counted then)."""
        lim = self.limits
        ttl_ms = _ms(lim.window_seconds + max(lim.lockout_max_seconds, lim.user_slow_max_seconds))
        answer = await self.redis.eval(
            _RESERVE, 4, *self._keys(ip, username),
            _ms(self.clock.now()), _ms(lim.window_seconds), lim.per_address, lim.per_user_at_address,
            _ms(lim.lockout_seconds), _ms(lim.lockout_max_seconds), lim.user_slow_after,
            _ms(USER_SLOW_FIRST_SECONDS), _ms(lim.user_slow_max_seconds), ttl_ms,
            ip, _ms(KNOWN_ADDRESS_DAYS * 86400),
        )
        if int(answer[0]) == 1:
            return None
        return Refusal(str(answer[2]), max(1, math.ceil(int(answer[1]) / 1000)))

    async def refund(self, ip: str, username: str) -> None:
        """The attempt succeeded: it is not a failure, and the address is now known for the username."""
        await self.redis.eval(_REFUND, 4, *self._keys(ip, username), ip, _ms(self.clock.now()),
                              KNOWN_ADDRESSES_KEPT, _ms(KNOWN_ADDRESS_DAYS * 86400))

    @staticmethod
    def _keys(ip: str, username: str) -> tuple[str, str, str, str]:
        return (keys.login_attempts_address(ip), keys.login_attempts_user(username),
                keys.login_attempts_user_at(username, ip), keys.login_known_addresses(username))


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


# KEYS: address, user (every address), user at this address, each a hash: n attempts counted,
# since (the window's start; not for user-at-address, whose window runs from its last attempt),
# last (the latest attempt; not for the address), in the clock's ms; and the username's known
# addresses. ARGV: now, window, per_address, per_user_at_address, lockout, lockout_max,
# user_slow_after, user_slow_first, user_slow_max, ttl, address, how long an address stays known.
# Returns {1} when reserved, else {0, ms to wait, reason}. Concurrent requests read the clock
# before their scripts run, so `now` may be a little behind a `last` already written: a
# comparison is made only where there is a wait, and `last` never goes back.
_RESERVE = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local per_address, per_user_at = tonumber(ARGV[3]), tonumber(ARGV[4])
local lockout, lockout_max = tonumber(ARGV[5]), tonumber(ARGV[6])
local slow_after, slow_first, slow_max = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local ttl = tonumber(ARGV[10])
local known_at = tonumber(redis.call('ZSCORE', KEYS[4], ARGV[11]))
local known = known_at ~= nil and now - known_at < tonumber(ARGV[12])

local function read(key)
  local v = redis.call('HMGET', key, 'n', 'since', 'last')
  return tonumber(v[1]) or 0, tonumber(v[2]) or now, tonumber(v[3]) or 0
end
-- The wait after the n-th attempt: none for the first `free`, then doubling up to `most`.
local function backoff(n, free, first, most)
  if n < free then return 0 end
  return math.min(first * 2 ^ (n - free), most)
end

local a_n, a_since = read(KEYS[1])
if now - a_since >= window then a_n, a_since = 0, now end
if a_n >= per_address then return {0, a_since + window - now, 'address'} end

local p_n, _, p_last = read(KEYS[3])
local p_wait = backoff(p_n, per_user_at, lockout, lockout_max)
if now >= p_last + p_wait + window then p_n, p_wait = 0, 0 end  -- quiet for a window: forgotten
if p_wait > 0 and now < p_last + p_wait then return {0, p_last + p_wait - now, 'user_at_address'} end

local u_n, u_since, u_last = read(KEYS[2])
if now - u_since >= window then u_n, u_since = 0, now end
local u_wait = backoff(u_n, slow_after, slow_first, slow_max)
if u_wait > 0 and not known and now < u_last + u_wait then return {0, u_last + u_wait - now, 'user'} end

redis.call('HSET', KEYS[1], 'n', a_n + 1, 'since', a_since)
redis.call('HSET', KEYS[2], 'n', u_n + 1, 'since', u_since, 'last', math.max(now, u_last))
redis.call('HSET', KEYS[3], 'n', p_n + 1, 'last', math.max(now, p_last))
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
return {1}
"""

# A success: the address and the username get the attempt back; this address's failures at
# this username are forgiven, and the address is known (the most recent few are kept).
# ARGV: address, now, how many to keep, how long they stay known.
_REFUND = """
for i = 1, 2 do
  if (tonumber(redis.call('HGET', KEYS[i], 'n')) or 0) > 0 then redis.call('HINCRBY', KEYS[i], 'n', -1) end
end
redis.call('DEL', KEYS[3])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -1 - tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[4], ARGV[4])
return 1
"""
