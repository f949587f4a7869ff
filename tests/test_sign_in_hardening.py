"""Sign-in under attack: attempts reserved before hashing, lock-outs per address, a global
slow-down, bounded hashing, argon2id (scrypt upgraded), no open redirect, no login CSRF."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from server.app import create_app
from server.auth import passwords, staff
from server.auth.sessions import COOKIE_NAME
from server.auth.staff import Role, create_user
from server.clock import ManualClock
from server.settings import Settings
from server.store import keys
from server.store.connection import Redis
from tests.helpers import Api

PASSWORD = "correct horse battery"
WAIT = 10.0  # seconds: the most any expected answer or thread may take


@pytest.fixture
def make_api(aiohttp_client: Any, settings: Settings, redis: Redis, clock: ManualClock) -> Callable[..., Any]:
    async def make(**changes: Any) -> Api:
        changed = settings.replace(**changes)
        return Api(await aiohttp_client(create_app(changed, redis=redis, clock=clock)), redis, clock, changed)

    return make


@asynccontextmanager
async def from_address(ip: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A client on another loopback address, as if another machine."""
    connector = aiohttp.TCPConnector(local_addr=(ip, 0))
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
        yield http


async def sign_in(api: Api, username: str, password: str, http: aiohttp.ClientSession | None = None,
                  headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    session = http or api.client.session
    async with session.post(api.client.make_url("/api/v1/login"), headers=headers,
                            json={"username": username, "password": password}) as resp:
        body = await resp.json()
    api.client.session.cookie_jar.clear()
    return resp.status, body


class HeldChecks:
    """Password checks that wait, in their threads, until released: what is in flight can be seen."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.calls = 0

    def check(self, password: str, stored: str) -> passwords.PasswordCheck:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            assert self.release.wait(WAIT), "never released"
            return passwords.check_password(password, stored)
        finally:
            with self.lock:
                self.running -= 1

    async def until_running(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while self.running < count:
                await asyncio.sleep(0.005)


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> HeldChecks:
    checks = HeldChecks()
    monkeypatch.setattr(staff, "check_password", checks.check)
    return checks


# -- 1. a burst is limited before hashing ----------------------------------------------------------


async def test_attempts_in_flight_count_so_a_burst_cannot_outrun_the_limit(
        make_api: Callable[..., Any], held: HeldChecks) -> None:
    api = await make_api(password_checks_at_once=5, password_checks_queue=100)  # only the limiter refuses
    await create_user(api.redis, "dana", PASSWORD, Role.FACILITATOR)
    allowed = api.settings.login_max_failures_per_user
    first = [asyncio.create_task(sign_in(api, "dana", "wrong password")) for _ in range(allowed)]
    await held.until_running(allowed)  # five attempts are being hashed, none has failed yet
    # The rest of a 40-request burst, the right password last: refused at once, none hashed.
    rest = await asyncio.gather(*(sign_in(api, "dana", "wrong password") for _ in range(34)),
                                sign_in(api, "dana", PASSWORD))
    assert [status for status, _ in rest] == [429] * 35
    assert rest[-1][1]["error"]["code"] == "rate_limited"
    assert rest[-1][1]["error"]["retry_after_seconds"] == api.settings.login_lockout_seconds
    held.release.set()
    assert [status for status, _ in await asyncio.gather(*first)] == [401] * allowed
    assert held.calls == allowed
    # The lock-out ends on the clock, and the right password then signs in.
    api.clock.advance(api.settings.login_lockout_seconds)
    assert (await sign_in(api, "dana", PASSWORD))[0] == 200


async def test_password_hashing_runs_a_few_at_a_time_in_threads_and_a_full_line_is_refused_at_once(
        make_api: Callable[..., Any], held: HeldChecks) -> None:
    api = await make_api(password_checks_at_once=2, password_checks_queue=2)
    burst = [asyncio.create_task(sign_in(api, f"user{i}", "wrong password")) for i in range(8)]
    await held.until_running(2)
    refused = []
    async with asyncio.timeout(WAIT):
        for answer in asyncio.as_completed(burst):  # the first four answers, while two are held
            refused.append(await answer)
            if len(refused) == 4:
                break
    assert [(status, body["error"]["code"]) for status, body in refused] == [(503, "unavailable")] * 4
    # While both slots are busy hashing, the event loop still answers.
    assert (await api.client.get("/healthz")).status == 200
    held.release.set()
    statuses = sorted([status for status, _ in await asyncio.gather(*burst)])
    assert statuses == [401] * 4 + [503] * 4
    assert held.most == 2 and held.calls == 4


async def test_concurrent_sign_ins_that_read_the_clock_out_of_order_are_not_refused(api: Api) -> None:
    """Requests read the clock before their scripts run in Redis, so one may arrive with a time
    a little before an attempt already counted; with no lock-out due, it is simply counted."""
    await create_user(api.redis, "dana", PASSWORD, Role.FACILITATOR)
    assert (await sign_in(api, "dana", "wrong password"))[0] == 401
    api.clock.advance(-0.005)
    assert (await sign_in(api, "dana", "wrong password"))[0] == 401
    assert (await sign_in(api, "dana", PASSWORD))[0] == 200


# -- 2. lock-outs per address, slowing per user ----------------------------------------------------


async def test_failures_elsewhere_never_lock_the_real_user_out_and_the_lock_out_doubles(api: Api) -> None:
    await create_user(api.redis, "dana", PASSWORD, Role.FACILITATOR)
    lockout = api.settings.login_lockout_seconds
    async with from_address("127.0.0.2") as attacker, from_address("127.0.0.3") as clinic:
        for _ in range(api.settings.login_max_failures_per_user):
            assert (await sign_in(api, "dana", "guess", attacker))[0] == 401
        status, body = await sign_in(api, "dana", PASSWORD, attacker)
        assert status == 429 and body["error"]["retry_after_seconds"] == lockout
        assert (await sign_in(api, "dana", PASSWORD, clinic))[0] == 200  # the real user, elsewhere
        api.clock.advance(lockout)
        assert (await sign_in(api, "dana", "guess", attacker))[0] == 401
        status, body = await sign_in(api, "dana", "guess", attacker)
        assert status == 429 and body["error"]["retry_after_seconds"] == 2 * lockout
        api.clock.advance(2 * lockout - 1)
        assert (await sign_in(api, "dana", "guess", attacker))[0] == 429
        api.clock.advance(1)
        assert (await sign_in(api, "dana", "guess", attacker))[0] == 401
        assert (await sign_in(api, "dana", PASSWORD, clinic))[0] == 200


async def test_many_failures_at_one_username_from_everywhere_slow_it_down_but_never_lock_it(
        make_api: Callable[..., Any]) -> None:
    api = await make_api(login_slow_after_failures_per_user=6, login_slow_max_seconds=4)
    await create_user(api.redis, "dana", PASSWORD, Role.FACILITATOR)
    async with from_address("127.0.0.2") as one, from_address("127.0.0.3") as two, \
            from_address("127.0.0.4") as clinic:
        for http in [one] * 5 + [two]:
            assert (await sign_in(api, "dana", "guess", http))[0] == 401
        status, body = await sign_in(api, "dana", PASSWORD, clinic)
        assert status == 429 and body["error"]["retry_after_seconds"] == 1
        api.clock.advance(1)
        assert (await sign_in(api, "dana", "guess", two))[0] == 401  # the 7th failure: 2 s now
        api.clock.advance(1)
        assert (await sign_in(api, "dana", PASSWORD, clinic))[0] == 429
        api.clock.advance(1)
        assert (await sign_in(api, "dana", PASSWORD, clinic))[0] == 200
        for _ in range(3):  # waits double to the most, 4 s, and stay there
            api.clock.advance(4)
            assert (await sign_in(api, "dana", "guess", two))[0] == 401
        api.clock.advance(4)
        assert (await sign_in(api, "dana", PASSWORD, clinic))[0] == 200


async def test_an_address_the_user_signed_in_from_is_not_slowed_by_failures_elsewhere(
        make_api: Callable[..., Any]) -> None:
    api = await make_api(login_slow_after_failures_per_user=6)
    await create_user(api.redis, "dana", PASSWORD, Role.FACILITATOR)
    async with from_address("127.0.0.2") as one, from_address("127.0.0.3") as two, \
            from_address("127.0.0.4") as clinic, from_address("127.0.0.5") as new_laptop:
        assert (await sign_in(api, "dana", PASSWORD, clinic))[0] == 200
        api.clock.advance(3600)
        for http in [one] * 5 + [two] * 3:
            await sign_in(api, "dana", "guess", http)
        assert (await sign_in(api, "dana", PASSWORD, new_laptop))[0] == 429
        assert (await sign_in(api, "dana", PASSWORD, clinic))[0] == 200
        # Known for a while only: a month later the clinic's address waits like any other.
        api.clock.advance(31 * 86400)
        for http in [one] * 5 + [two] * 3:
            await sign_in(api, "dana", "guess", http)
        assert (await sign_in(api, "dana", PASSWORD, clinic))[0] == 429


# -- 3. argon2id, and scrypt hashes upgraded -------------------------------------------------------


def _old_scrypt_hash(password: str) -> str:
    """How server/auth/passwords.py stored passwords before argon2id."""
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**15, r=8, p=1, maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt$32768$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


async def test_new_passwords_are_argon2id_with_owasp_parameters(api: Api) -> None:
    user = await create_user(api.redis, "dana", PASSWORD, Role.FACILITATOR)
    stored = await api.redis.hget(keys.user(user.id), "password")
    assert re.match(r"^\$argon2id\$v=19\$m=(\d+),t=2,p=1\$", stored)
    assert int(re.findall(r"m=(\d+)", stored)[0]) >= 19 * 1024
    assert (await sign_in(api, "dana", PASSWORD))[0] == 200


async def test_a_stored_scrypt_hash_signs_in_and_becomes_argon2id(api: Api) -> None:
    user = await create_user(api.redis, "dana", PASSWORD, Role.FACILITATOR)
    old = _old_scrypt_hash(PASSWORD)
    await api.redis.hset(keys.user(user.id), "password", old)
    assert (await sign_in(api, "dana", "wrong password"))[0] == 401
    assert await api.redis.hget(keys.user(user.id), "password") == old  # a failure upgrades nothing
    assert (await sign_in(api, "dana", PASSWORD))[0] == 200
    assert (await api.redis.hget(keys.user(user.id), "password")).startswith("$argon2id$")
    assert (await sign_in(api, "dana", PASSWORD))[0] == 200
    assert (await sign_in(api, "dana", "wrong password"))[0] == 401


# -- 4. no open redirect after sign-in -------------------------------------------------------------


EVIL_NEXT = ["//x", "/\\x", "/%5Cx", "/%09/x", "/%0A/x", "/%0D/x", "https://x", "/%2F/x", "%09//x", "/%20/x",
             "%20//x", "/%E2%80%A8/x", "/%C2%85/x"]


async def test_next_after_sign_in_is_only_ever_a_path_on_this_site(api: Api) -> None:
    admin = await api.staff("admin", Role.ADMIN)
    for wanted in EVIL_NEXT:
        signed_in = await api.client.get(f"/login?next={wanted}", allow_redirects=False,
                                         headers={"Cookie": f"{COOKIE_NAME}={admin.cookie}"})
        assert (signed_in.status, signed_in.headers["Location"]) == (302, "/admin"), wanted
        page = await api.client.get(f"/login?next={wanted}")
        assert 'data-next=""' in await page.text(), wanted
    kept = await api.client.get("/login?next=/admin/billing%3Fstatus%3Dfailed", allow_redirects=False,
                                headers={"Cookie": f"{COOKIE_NAME}={admin.cookie}"})
    assert kept.headers["Location"] == "/admin/billing?status=failed"


# -- 5. no login CSRF ------------------------------------------------------------------------------


async def test_a_cross_site_sign_in_is_refused(api: Api) -> None:
    await create_user(api.redis, "dana", PASSWORD, Role.FACILITATOR)
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Origin": "http://porchlight.test.evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "http://porchlight.test", "Sec-Fetch-Site": "cross-site"}):
        status, body = await sign_in(api, "dana", PASSWORD, headers=headers)
        assert (status, body["error"]["code"]) == (403, "csrf_failed"), headers
    for headers in ({"Origin": "http://porchlight.test", "Sec-Fetch-Site": "same-origin"}, {}):
        assert (await sign_in(api, "dana", PASSWORD, headers=headers))[0] == 200, headers
