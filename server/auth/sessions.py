"""Server-side staff sessions in Redis behind a signed cookie.

The cookie holds only a random session token, signed with itsdangerous. The session itself
(user, CSRF token, last activity) lives in Redis: logout deletes it, so it is revoked at once.
Idle time is measured with the injectable clock; Redis's TTL only collects what is left over.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

from server.auth.staff import User, get_user
from server.clock import Clock
from server.store import keys
from server.store.connection import Redis

COOKIE_NAME = "porchlight_session"


@dataclass(frozen=True)
class StaffSession:
    token: str
    user: User
    csrf_token: str


class StaffSessions:
    def __init__(self, redis: Redis, secret_keys: str | Sequence[str], clock: Clock, idle_timeout: float,
                 max_age: float = 12 * 3600) -> None:
        self.redis = redis
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.max_age = max_age  # a sign-in ends this long after it began, however busy
        # A request within this of the last recorded activity does not write it again: one
        # write (and, with appendfsync always, one fsync) less on most staff requests, such as
        # an admission. The idle timer is then at most this much early: 7.5 s of 15 minutes.
        self.touch_every = idle_timeout / 120
        self._signer = URLSafeSerializer(verifying_keys(secret_keys), salt="porchlight.staff-session")

    def _ttl(self) -> int:
        return int(self.idle_timeout) + 60

    async def start(self, user: User) -> tuple[StaffSession, str]:
        """A new session; returns it and the signed cookie value."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.staff_session(token), mapping={
                "user_id": user.id, "csrf": csrf, "last_seen": repr(self.clock.now()),
                "started": repr(self.clock.now()),
            })
            pipe.expire(keys.staff_session(token), self._ttl())
            pipe.sadd(keys.user_staff_sessions(user.id), token)
            await pipe.execute()
        return StaffSession(token, user, csrf), self._signer.dumps(token)

    async def resume(self, cookie: str | None, touch: bool = True) -> StaffSession | None:
        """The live session behind a cookie, or None (forged, expired, revoked)."""
        if not cookie:
            return None
        try:
            token = self._signer.loads(cookie)
        except BadSignature:
            return None
        if not isinstance(token, str):
            return None
        data = await self.redis.hgetall(keys.staff_session(token))
        if not data:
            return None
        now = self.clock.now()
        started = float(data.get("started", data["last_seen"]))
        if now - float(data["last_seen"]) > self.idle_timeout or now - started > self.max_age:
            await self.revoke(token, data["user_id"])
            return None
        user = await get_user(self.redis, data["user_id"])
        if user is None or not user.active:
            return None
        if touch and now - float(data["last_seen"]) >= self.touch_every:
            await self.touch(token, now)
        return StaffSession(token, user, data["csrf"])

    async def touch(self, token: str, now: float | None = None) -> None:
        """Reset the idle timer (requests and staff WebSocket traffic call this)."""
        stamp = repr(now if now is not None else self.clock.now())
        await self.redis.eval(_TOUCH, 1, keys.staff_session(token), stamp, self._ttl())

    async def revoke(self, token: str, user_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.staff_session(token))
            pipe.srem(keys.user_staff_sessions(user_id), token)
            await pipe.execute()


def verifying_keys(secret_keys: str | Sequence[str]) -> list[str]:
    """itsdangerous's order for key rotation: every key verifies, the LAST signs. Ours is the
    operator's: the first key given signs (PORCHLIGHT_SECRET_KEY="new old")."""
    keys_ = [secret_keys] if isinstance(secret_keys, str) else list(secret_keys)
    return list(reversed(keys_))


# Refresh last_seen only if the session still exists.
_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
