"""What operators set around the server: secrets from files, Kubernetes' injected variables,
and the reverse proxy in front of it."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from server.requests import forwarded_client
from server.settings import Settings, SettingsError
from tests.helpers import Api

KEY = "k" * 40


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(KEY + "\n")
    (tmp_path / "url").write_text("redis://:p%40ss@redis.internal:6379/0\n")
    settings = Settings.from_env({"PORCHLIGHT_SECRET_KEY_FILE": str(tmp_path / "key"),
                                  "PORCHLIGHT_REDIS_URL_FILE": str(tmp_path / "url"),
                                  "PORCHLIGHT_DATA_DIR": str(tmp_path)})
    assert settings.secret_key == KEY
    assert settings.redis_url == "redis://:p%40ss@redis.internal:6379/0"


def test_a_secret_file_that_cannot_be_read_or_is_doubled_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"PORCHLIGHT_SECRET_KEY_FILE": str(tmp_path / "missing"),
                           "PORCHLIGHT_BILLING_WEBHOOK_SECRET": "whsec_" + "A" * 32,
                           "PORCHLIGHT_BILLING_WEBHOOK_SECRET_FILE": str(tmp_path / "missing"),
                           "PORCHLIGHT_DATA_DIR": str(tmp_path)})
    problems = "\n".join(caught.value.problems)
    assert "PORCHLIGHT_SECRET_KEY_FILE: cannot read" in problems
    assert "set one of them, not both" in problems
    assert KEY not in problems


def test_kubernetes_service_links_are_ignored(tmp_path: Path) -> None:
    env = {
        "PORCHLIGHT_PORT": "tcp://10.96.0.12:8080",
        "PORCHLIGHT_PORT_8080_TCP": "tcp://10.96.0.12:8080",
        "PORCHLIGHT_PORT_8080_TCP_ADDR": "10.96.0.12",
        "PORCHLIGHT_PORT_8080_TCP_PORT": "8080",
        "PORCHLIGHT_PORT_8080_TCP_PROTO": "tcp",
        "PORCHLIGHT_SERVICE_HOST": "10.96.0.12",
        "PORCHLIGHT_SERVICE_PORT": "8080",
        "PORCHLIGHT_SERVICE_PORT_HTTP": "8080",
        "PORCHLIGHT_DATA_DIR": str(tmp_path),
    }
    assert Settings.from_env(env).port == 8080
    assert Settings.from_env({**env, "PORCHLIGHT_PORT_8080_TCP_PORT": "x"}).port == 8080
    with pytest.raises(SettingsError):  # a real PORCHLIGHT_PORT is still checked
        Settings.from_env({**env, "PORCHLIGHT_PORT": "eighty"})


def test_start_up_says_service_links_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli import _load_settings

    for name in [n for n in os.environ if n.startswith("PORCHLIGHT_")]:  # e.g. CI's own switches
        monkeypatch.delenv(name)
    monkeypatch.setenv("PORCHLIGHT_PORT", "tcp://10.96.0.12:8080")
    monkeypatch.setenv("PORCHLIGHT_SERVICE_HOST", "10.96.0.12")
    monkeypatch.setenv("PORCHLIGHT_DATA_DIR", str(tmp_path))
    assert _load_settings().port == 8080
    assert "enableServiceLinks: false" in capsys.readouterr().err


def test_trusted_proxies_name_the_client_and_nothing_a_client_writes_is_believed() -> None:
    proxies = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert forwarded_client("203.0.113.9", ["198.51.100.1"], proxies) == "203.0.113.9"  # not via a proxy
    assert forwarded_client("10.0.0.2", ["198.51.100.1"], proxies) == "198.51.100.1"
    # A client that forges hops to the left is seen as the address the proxy saw.
    assert forwarded_client("10.0.0.2", ["1.2.3.4, 198.51.100.1"], proxies) == "198.51.100.1"
    assert forwarded_client("10.0.0.2", ["198.51.100.1, 10.0.0.7"], proxies) == "198.51.100.1"  # two proxies
    assert forwarded_client("10.0.0.2", ["not-an-ip"], proxies) == "10.0.0.2"
    assert forwarded_client("10.0.0.2", [], proxies) == "10.0.0.2"
    with pytest.raises(SettingsError):
        Settings.from_env({"PORCHLIGHT_TRUSTED_PROXIES": "10.0.0.0/8, nonsense"})


async def test_behind_a_trusted_proxy_per_address_limits_count_each_client(api: Api, aiohttp_client: object) -> None:
    from server.app import create_app

    settings = api.settings.replace(trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),),
                                    login_max_failures_per_ip=2)
    proxied = Api(await aiohttp_client(create_app(settings, redis=api.redis, clock=api.clock)),  # type: ignore[operator]
                  api.redis, api.clock, settings)

    async def wrong(client_address: str, username: str) -> int:
        resp = await proxied.client.post("/api/v1/login", json={"username": username, "password": "wrong"},
                                         headers={"X-Forwarded-For": client_address})
        return resp.status

    assert [await wrong("198.51.100.1", f"user{i}") for i in range(3)] == [401, 401, 429]
    # Another patient-facing client behind the same proxy is not blocked by the first one.
    assert await wrong("198.51.100.2", "someone") == 401


async def test_rotating_the_signing_key_keeps_links_and_sign_ins_valid(api: Api, aiohttp_client: object) -> None:
    from server.app import create_app

    old, new = "o" * 40, "n" * 40
    before = api.settings.replace(secret_key=old)
    first = Api(await aiohttp_client(create_app(before, redis=api.redis, clock=api.clock)),  # type: ignore[operator]
                api.redis, api.clock, before)
    world = await first.world(patients=1)
    await first.open(world)

    # The operator rotates: PORCHLIGHT_SECRET_KEY="new old"; the new key signs, the old still verifies.
    rotated = Settings.from_env({"PORCHLIGHT_SECRET_KEY": f"{new} {old}", "PORCHLIGHT_DATA_DIR": "unused"})
    assert rotated.signing_keys == (new, old)
    during = api.settings.replace(secret_key=rotated.secret_key, previous_secret_keys=rotated.previous_secret_keys)
    second = Api(await aiohttp_client(create_app(during, redis=api.redis, clock=api.clock)),  # type: ignore[operator]
                 api.redis, api.clock, during)
    await second.patient(world.tokens[0])  # a link handed out before the rotation still works
    await second.get(world.admin, "/me")  # and so does a sign-in
    rotated_link = (await second.post(world.admin, f"/enrollments/{world.patients[0]['enrollment_id']}/rotate-link"))
    token = rotated_link["join_url"].rsplit("/j/", 1)[1]

    # Once the old key is dropped, only what the new key signed is accepted.
    after = api.settings.replace(secret_key=new)
    third = Api(await aiohttp_client(create_app(after, redis=api.redis, clock=api.clock)),  # type: ignore[operator]
                api.redis, api.clock, after)
    await third.get(world.admin, "/me", expect=401)
    await third.patient(token)


async def test_a_staff_sign_in_ends_after_its_maximum_age_however_busy(api: Api) -> None:
    world = await api.world(patients=0)
    limit = api.settings.staff_session_max_seconds
    idle = api.settings.staff_idle_timeout_seconds
    for _ in range(int(limit // (idle / 2))):  # busy all along: a request every half idle period
        api.clock.advance(idle / 2)
        await api.get(world.admin, "/me")
    api.clock.advance(idle / 2)
    await api.get(world.admin, "/me", expect=401)
