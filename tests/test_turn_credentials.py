"""TURN credentials minted per participant (coturn's use-auth-secret, the TURN REST API convention):
a real coturn `turnserver` accepts one for as long as it lasts, and refuses it once expired or
under another participant's id."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aioice import stun
from aioice.turn import create_turn_endpoint

from server.app import create_app
from server.clock import ManualClock
from server.logs import redact
from server.media.ice import IceServers, Turn, mint
from server.settings import Settings, SettingsError
from server.store.connection import Redis
from tests.conftest import free_port
from tests.helpers import Api

SECRET = "turn-shared-secret-0123456789"
NOW = 1_800_000_000.0


def test_the_username_is_expiry_and_participant_and_the_password_its_hmac_sha1() -> None:
    credential = mint(SECRET, "pat_abc", NOW, 3600)
    assert credential.username == f"{int(NOW) + 3600}:pat_abc"
    assert credential.expires_at == int(NOW) + 3600
    # coturn's check (turn_admin/userdb: HMAC over the username with the static-auth-secret, base64)
    expected = base64.b64encode(hmac.new(SECRET.encode(), credential.username.encode(), hashlib.sha1).digest())
    assert credential.password == expected.decode()
    assert credential.password not in repr(credential)


def test_each_participant_gets_their_own_credential_with_the_configured_servers() -> None:
    clock = ManualClock(NOW)
    stun_only = {"urls": "stun:stun.example.org:3478"}
    ice = IceServers((stun_only,), Turn(("turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"),
                                        SECRET, ttl_seconds=600), clock)
    first, second = ice.for_participant("pat_one"), ice.for_participant("pat_two")
    assert first[0] == stun_only and second[0] == stun_only
    assert first[1]["urls"] == ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]
    assert first[1]["username"] == f"{int(NOW) + 600}:pat_one" and second[1]["username"].endswith(":pat_two")
    assert first[1]["credential"] != second[1]["credential"]
    clock.advance(60)  # minted again later: a later expiry
    assert ice.for_participant("pat_one")[1]["username"] == f"{int(NOW) + 660}:pat_one"
    assert IceServers((stun_only,), None, clock).for_participant("pat_one") == [stun_only]


def test_a_credential_in_a_frame_never_reaches_a_log_line() -> None:
    servers = IceServers((), Turn(("turn:turn.example.org",), SECRET), ManualClock(NOW)).for_participant("pat_x")
    line = redact(json.dumps({"type": "admitted", "session_id": "ses_1", "ice_servers": servers}))
    assert servers[0]["credential"] not in line and SECRET not in line
    assert servers[0]["username"] in line  # the opaque id and expiry may be seen


def test_turn_settings_come_together_validated_and_the_secret_may_be_a_file(tmp_path: Path) -> None:
    (tmp_path / "turn").write_text(SECRET + "\n")
    settings = Settings.from_env({"PORCHLIGHT_TURN_URLS": "turn:turn.example.org:3478, turns:turn.example.org:5349",
                                  "PORCHLIGHT_TURN_SECRET_FILE": str(tmp_path / "turn"),
                                  "PORCHLIGHT_TURN_TTL_SECONDS": "7200", "PORCHLIGHT_DATA_DIR": str(tmp_path)})
    assert settings.turn_urls == ("turn:turn.example.org:3478", "turns:turn.example.org:5349")
    assert (settings.turn_secret, settings.turn_ttl_seconds) == (SECRET, 7200)
    assert SECRET not in repr(settings)
    for env, says in (
        ({"PORCHLIGHT_TURN_URLS": "turn:turn.example.org"}, "set both"),
        ({"PORCHLIGHT_TURN_SECRET": SECRET}, "set both"),
        ({"PORCHLIGHT_TURN_URLS": "http://turn.example.org", "PORCHLIGHT_TURN_SECRET": SECRET}, "turn:host"),
        ({"PORCHLIGHT_TURN_URLS": "turn:t", "PORCHLIGHT_TURN_SECRET": "short-secret"}, "at least 16"),
        ({"PORCHLIGHT_TURN_URLS": "turn:t", "PORCHLIGHT_TURN_SECRET": SECRET, "PORCHLIGHT_TURN_TTL_SECONDS": "5"},
         "between 60"),
    ):
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({**env, "PORCHLIGHT_DATA_DIR": str(tmp_path)})
        problems = "\n".join(caught.value.problems)
        assert says in problems and SECRET not in problems and "short-secret" not in problems


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.skip("coturn's turnserver is not installed (apt-get install coturn; CI installs it)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}", "--relay-ip=127.0.0.1",
         "--use-auth-secret", f"--static-auth-secret={SECRET}", "--realm=porchlight.test",
         "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers", f"--userdb={tmp_path / 'turndb'}",
         f"--pidfile={tmp_path / 'turnserver.pid'}", "--log-file=stdout", "--simple-log"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:  # it says so once its listeners are up
        if "(admin thread)" in line:
            break
    else:
        process.kill()
        process.wait(10)
        pytest.fail("turnserver exited before listening")
    threading.Thread(target=process.stdout.read, daemon=True).start()  # its log must not fill the pipe
    yield port
    process.terminate()
    process.wait(10)


async def _allocate(port: int, username: str, password: str) -> tuple[str, int]:
    """A TURN Allocate with these credentials: the relayed address coturn hands out."""
    transport, _ = await asyncio.wait_for(create_turn_endpoint(
        asyncio.DatagramProtocol, ("127.0.0.1", port), username, password), 10)
    relayed = transport.get_extra_info("sockname")
    transport.close()
    return tuple(relayed)  # type: ignore[return-value]


async def test_coturn_relays_for_a_minted_credential_and_refuses_it_expired_or_under_another_id(
        coturn: int) -> None:
    clock = ManualClock(time.time())
    ice = IceServers((), Turn((f"turn:127.0.0.1:{coturn}",), SECRET, ttl_seconds=600), clock)
    server = ice.for_participant("pat_robin")[0]
    host, _ = await _allocate(coturn, server["username"], server["credential"])
    assert host == "127.0.0.1"

    with pytest.raises(stun.TransactionFailed, match="401"):  # Robin's password under Sam's id
        await _allocate(coturn, server["username"].replace("pat_robin", "pat_sam"), server["credential"])
    clock.advance(-601)  # minted 601 s ago with a 600 s lifetime: expired now
    stale = ice.for_participant("pat_robin")[0]
    with pytest.raises(stun.TransactionFailed, match="401"):
        await _allocate(coturn, stale["username"], stale["credential"])


async def test_admission_hands_each_participant_a_turn_credential_of_their_own_and_logs_none(
        aiohttp_client: Any, settings: Settings, redis: Redis, clock: ManualClock,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings.replace(turn_urls=("turn:turn.example.org:3478",), turn_secret=SECRET, turn_ttl_seconds=600)
    api = Api(await aiohttp_client(create_app(settings, redis=redis, clock=clock)), redis, clock, settings)
    world = await api.world(patients=2)
    session_id = await api.open(world)
    sockets = [await api.patient(token) for token in world.tokens]
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True})
    given = {}
    for patient, sock in zip(world.patients, sockets, strict=True):
        (server,) = (await sock.until("admitted"))["ice_servers"]
        given[patient["id"]] = server
    staff = await api.ws(world.facilitator)
    await staff.send({"type": "hello", "session_id": session_id})
    (given[world.facilitator.user_id],) = (await staff.until("roster"))["ice_servers"]  # staff's first roster

    for participant_id, server in given.items():
        assert server["urls"] == ["turn:turn.example.org:3478"]
        assert server["username"] == f"{int(clock.now()) + 600}:{participant_id}"
        assert server["credential"] == mint(SECRET, participant_id, clock.now(), 600).password
    assert len({server["credential"] for server in given.values()}) == 3
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert SECRET not in logged and not any(server["credential"] in logged for server in given.values())
