"""Password hashing: argon2id for new hashes; older scrypt hashes still verify, and are upgraded
at the next successful sign-in. Checks run in threads, a few at a time (PasswordChecks)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane (~30-60 ms on this class of machine).
ARGON2 = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID)

# The scrypt hashes written before argon2id: n=2**15, r=8 (32 MiB).
_SCRYPT_MAXMEM = 64 * 1024 * 1024


def hash_password(password: str) -> str:
    return ARGON2.hash(password)


@dataclass(frozen=True)
class PasswordCheck:
    matches: bool
    # A fresh argon2id hash of the same password, when the stored one is of an older kind.
    upgraded: str | None = None


def check_password(password: str, stored: str) -> PasswordCheck:
    """Whether `password` matches `stored`; on a match with an outdated hash, its replacement
    (computed here, in the same thread, so the caller's slot pays for it)."""
    if stored.startswith("$argon2"):
        try:
            ARGON2.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return PasswordCheck(False)
        return PasswordCheck(True, hash_password(password) if ARGON2.check_needs_rehash(stored) else None)
    if stored.startswith("scrypt$") and _scrypt_matches(password, stored):
        return PasswordCheck(True, hash_password(password))
    return PasswordCheck(False)


def _scrypt_matches(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt_b64, digest_b64 = stored.split("$")
        expected = base64.b64decode(digest_b64)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt_b64),
            n=int(n), r=int(r), p=int(p), maxmem=_SCRYPT_MAXMEM, dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# Verified against when the username is unknown, so timing does not reveal which names exist.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


P = ParamSpec("P")
T = TypeVar("T")


class PasswordChecksBusy(Exception):
    """Every password-check slot is taken and the queue for them is full."""


class PasswordChecks:
    """At most `at_once` password hashes are computed at a time, each in a thread so the event
    loop keeps serving; at most `queue` more sign-ins wait for a slot. A burst of sign-ins then
    takes at most `at_once` cores, and what is beyond the queue is refused at once instead of
    piling up."""

    def __init__(self, at_once: int, queue: int) -> None:
        return_big_blocks()
        self._slots = asyncio.Semaphore(at_once)
        self._places = at_once + queue
        self._taken = 0

    @contextlib.contextmanager
    def place(self) -> Iterator[None]:
        """A place in the line for the duration of one sign-in; PasswordChecksBusy if none is left."""
        if self._taken >= self._places:
            raise PasswordChecksBusy
        self._taken += 1
        try:
            yield
        finally:
            self._taken -= 1

    async def run(self, check: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        async with self._slots:
            return await asyncio.to_thread(check, *args, **kwargs)


def return_big_blocks() -> None:
    """An argon2id check takes a 19 MiB block. glibc serves blocks that size from a heap it keeps
    once it has seen one freed (its mmap threshold grows), so every process held 19 MiB more from
    its first sign-in on (measured: RSS 85 -> 105 MB). A fixed threshold of 1 MiB keeps such
    blocks mapped on their own and handed back when freed. A no-op without glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):
        pass


_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
