"""Staff accounts: admins and facilitators."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from server.auth.passwords import DUMMY_HASH, PasswordChecks, check_password, hash_password
from server.ids import new_id
from server.store import keys
from server.store.connection import Redis


class Role(StrEnum):
    ADMIN = "admin"
    FACILITATOR = "facilitator"


USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
NPI_RE = re.compile(r"^\d{10}$")
MAX_NAME = 100
MIN_PASSWORD = 8
MAX_PASSWORD = 1024


class StaffError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def can_run(user: User, group: dict[str, Any]) -> bool:
    """The one rights rule: an admin runs every group, a facilitator the groups they facilitate."""
    return user.role is Role.ADMIN or user.id in group.get("facilitator_ids", [])


@dataclass(frozen=True)
class User:
    id: str
    username: str
    name: str
    role: Role
    npi: str | None
    active: bool = True  # a deactivated account cannot sign in; its records keep its name

    def public(self) -> dict[str, str | bool | None]:
        return {"id": self.id, "name": self.name, "role": str(self.role), "username": self.username, "npi": self.npi,
                "active": self.active}


async def create_user(
    redis: Redis, username: str, password: str, role: Role, name: str | None = None, npi: str | None = None
) -> User:
    if not USERNAME_RE.match(username):
        raise StaffError("bad_request", "username: 1-64 letters, digits or _.@-")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise StaffError("bad_request", f"password: {MIN_PASSWORD}-{MAX_PASSWORD} characters")
    validate_profile(name, npi)
    user = User(new_id("usr"), username, name or username, role, npi)
    # SET NX claims the username; the account itself follows in one transaction.
    if not await redis.set(keys.username(username), user.id, nx=True):
        raise StaffError("username_taken", f"username {username!r} is taken")
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.user(user.id), mapping={
            "id": user.id, "username": username, "name": user.name, "role": str(role),
            "npi": npi or "", "password": await asyncio.to_thread(hash_password, password),
        })
        pipe.sadd(keys.users(), user.id)
        await pipe.execute()
    return user


def _user_from(data: dict[str, str]) -> User:
    return User(data["id"], data["username"], data["name"], Role(data["role"]), data.get("npi") or None,
                data.get("active", "1") != "0")


async def get_user(redis: Redis, user_id: str) -> User | None:
    data = await redis.hgetall(keys.user(user_id))
    return _user_from(data) if data else None


async def authenticate(redis: Redis, username: str, password: str, checks: PasswordChecks) -> User | None:
    user_id = await redis.get(keys.username(username)) if USERNAME_RE.match(username) else None
    data = await redis.hgetall(keys.user(user_id)) if user_id else {}
    if not data:
        await checks.run(check_password, password, DUMMY_HASH)
        return None
    checked = await checks.run(check_password, password, data["password"])
    if not checked.matches or data.get("active", "1") == "0":  # a deactivated account reads as a wrong password
        return None
    if checked.upgraded is not None:
        await redis.eval(_UPGRADE_HASH, 1, keys.user(data["id"]), data["password"], checked.upgraded)
    return _user_from(data)


# The upgraded hash replaces the one that was checked, and only that one: a password changed
# meanwhile is never overwritten with the old password.
_UPGRADE_HASH = """
if redis.call('HGET', KEYS[1], 'password') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'password', ARGV[2])
  return 1
end
return 0
"""


async def set_password(redis: Redis, user_id: str, password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise StaffError("bad_request", f"password: {MIN_PASSWORD}-{MAX_PASSWORD} characters")
    await redis.hset(keys.user(user_id), "password", await asyncio.to_thread(hash_password, password))


def validate_profile(name: str | None, npi: str | None) -> None:
    if name is not None and not 0 < len(name) <= MAX_NAME:
        raise StaffError("bad_request", f"name: 1-{MAX_NAME} characters")
    if npi is not None and not NPI_RE.match(npi):
        raise StaffError("bad_request", "npi: 10 digits")


async def update_user(
    redis: Redis, user: User, *, name: str | None = None, npi: str | None = None, active: bool | None = None
) -> User:
    """Change a staff account's name, NPI or whether it is active. Deactivating ends every sign-in
    of the account at once (its staff sessions are deleted with the flag, in one transaction)."""
    validate_profile(name, npi)
    changes: dict[str, str] = {}
    if name is not None:
        changes["name"] = name
    if npi is not None:
        changes["npi"] = npi
    if active is not None:
        changes["active"] = "1" if active else "0"
    if not changes:
        return user
    tokens = await redis.smembers(keys.user_staff_sessions(user.id)) if active is False else set()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.user(user.id), mapping=changes)
        if tokens:
            pipe.delete(*[keys.staff_session(t) for t in tokens], keys.user_staff_sessions(user.id))
        await pipe.execute()
    return User(user.id, user.username, name if name is not None else user.name, user.role,
                npi if npi is not None else user.npi, user.active if active is None else active)


async def all_users(redis: Redis) -> list[User]:
    """Every staff account, by name (for choosing a group's facilitators)."""
    ids = sorted(await redis.smembers(keys.users()))
    users = [user for user in [await get_user(redis, i) for i in ids] if user is not None]
    return sorted(users, key=lambda u: u.name.lower())
