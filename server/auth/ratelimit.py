"""Failed-login counting per IP and per username; only failures count."""

from __future__ import annotations

from server.store import keys
from server.store.connection import Redis


class LoginLimiter:
    def __init__(self, redis: Redis, per_ip: int, per_user: int, window_seconds: int) -> None:
        self.redis = redis
        self.per_ip = per_ip
        self.per_user = per_user
        self.window = window_seconds

    async def blocked(self, ip: str, username: str) -> bool:
        ip_count, user_count = await self.redis.mget(
            keys.login_failures_ip(ip), keys.login_failures_user(username)
        )
        return int(ip_count or 0) >= self.per_ip or int(user_count or 0) >= self.per_user

    async def record_failure(self, ip: str, username: str) -> None:
        await self.redis.eval(_COUNT, 2, keys.login_failures_ip(ip), keys.login_failures_user(username), self.window)


# Count a failure under both keys; the window starts at the first failure (works on Redis 6).
_COUNT = """
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return 1
"""
