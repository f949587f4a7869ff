"""The porchlight command as an operator uses it: real processes, the embedded Redis."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from server.settings import SETTINGS, Settings, SettingsError
from server.store.embedded import socket_path_for

PORCHLIGHT = [sys.executable, "-m", "server"]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORCHLIGHT_")}
    env.update({"PORCHLIGHT_DATA_DIR": str(data_dir), "PORCHLIGHT_PORT": "0", "PORCHLIGHT_LOG_LEVEL": "WARNING"})
    env.update(extra)
    return env


class Running:
    def __init__(self, process: asyncio.subprocess.Process, output: list[str], url: str) -> None:
        self.process = process
        self.output = output
        self.url = url


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Running]:
    process = await asyncio.create_subprocess_exec(
        *PORCHLIGHT, "demo", env=_env(tmp_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output: list[str] = []
    async with asyncio.timeout(60):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, "the server exited: " + "".join(output)
            output.append(line)
            if found := re.search(r"Porchlight is running at (http://\S+)", line):
                match = found
            if line.startswith("Press Ctrl-C to stop the server."):  # the demo banner's last line
                break


    async def drain() -> None:  # keep reading: a full pipe would stall the server's logging
        assert process.stdout is not None
        while line := (await process.stdout.readline()).decode():
            output.append(line)

    reader = asyncio.create_task(drain())
    yield Running(process, output, match.group(1))
    reader.cancel()
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)



async def test_demo_comes_with_three_weeks_of_attendance(demo: Running) -> None:
    """A new demo has past meetings, finalised like live ones: minutes, absences, a dropout flag."""
    text = "".join(demo.output)
    password = re.search(r"admin:\s+username admin\s+password (\S+)", text).group(1)  # type: ignore[union-attr]
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as admin:
        assert (await admin.post(f"{demo.url}/api/v1/login",
                                 json={"username": "admin", "password": password})).status == 200
        records = (await (await admin.get(f"{demo.url}/api/v1/attendance")).json())["records"]
        weekly = (await (await admin.get(f"{demo.url}/api/v1/attendance/weekly")).json())
    by_patient: dict[str, list[dict[str, object]]] = {}
    for record in records:
        by_patient.setdefault(str(record["patient_id"]), []).append(record)
    assert len(by_patient) == 3
    meetings = {r["session_id"] for r in records}
    assert len(meetings) >= 8  # three a week for three weeks, up to yesterday
    statuses = [sorted(str(r["status"]) for r in rows) for rows in by_patient.values()]
    assert ["attended"] * len(meetings) in statuses  # one comes to everything
    assert any(s.count("absent") == 3 for s in statuses)  # one stopped coming
    assert any(r["attended_minutes"] == 180 for r in records)
    assert any(week["dropout_risk"] for week in weekly["weeks"])


async def test_demo_facilitator_admits_a_patient_over_http_and_websocket(demo: Running, tmp_path: Path) -> None:
    """The issue's "done when": README's first command, then the whole admission through the API."""
    text = "".join(demo.output)
    password = re.search(r"facilitator:\s+username facilitator\s+password (\S+)", text).group(1)  # type: ignore[union-attr]
    group_id = re.search(r"group id:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
    links = re.findall(r"(http://\S+/j/\S+)", text)
    assert len(links) == 3 and all(link.startswith(demo.url) for link in links)

    # unsafe=True: aiohttp's cookie jar otherwise ignores cookies from an IP address host.
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as staff, aiohttp.ClientSession() as patient_http:
        login = await staff.post(f"{demo.url}/api/v1/login", json={"username": "facilitator", "password": password})
        assert login.status == 200
        csrf = (await login.json())["csrf_token"]
        opened = await staff.post(f"{demo.url}/api/v1/groups/{group_id}/sessions", headers={"X-CSRF-Token": csrf})
        assert opened.status == 201
        session_id = (await opened.json())["id"]

        page = await patient_http.get(links[0])
        assert page.status == 200 and page.headers["Referrer-Policy"] == "no-referrer"
        ws = await patient_http.ws_connect(f"{demo.url}/api/v1/ws")
        await ws.send_json({"type": "hello", "token": links[0].rsplit("/j/", 1)[1], "location": "home"})
        waiting = await ws.receive_json(timeout=10)
        assert waiting["type"] == "waiting" and waiting["session_id"] == session_id
        assert waiting["brand"]["name"] == "Lakeside Behavioral Health"

        seen = await (await staff.get(f"{demo.url}/api/v1/sessions/{session_id}")).json()
        assert [w["display_name"] for w in seen["waiting"]] == ["Alex R."]
        patient_id = seen["waiting"][0]["patient_id"]
        admitted = await staff.post(f"{demo.url}/api/v1/sessions/{session_id}/admit",
                                    json={"patient_ids": [patient_id]}, headers={"X-CSRF-Token": csrf})
        assert admitted.status == 200
        frames = []  # the patient's frames up to `admitted` (none other is expected; kept for the message)
        async with asyncio.timeout(10):
            while not frames or frames[-1]["type"] != "admitted":
                frames.append(await ws.receive_json())
        assert frames == [{"type": "admitted", "session_id": session_id, "ice_servers": []}], frames
        await ws.close()

    # `user add` reaches the running server's embedded Redis through the same data dir.
    added = subprocess.run([*PORCHLIGHT, "user", "add", "lee", "--role", "facilitator", "--npi", "1234567893"],
                           input="another good password\n", text=True, capture_output=True,
                           env=_env(tmp_path), timeout=60)
    assert added.returncode == 0, added.stderr
    async with aiohttp.ClientSession() as lee:
        login = await lee.post(f"{demo.url}/api/v1/login",
                               json={"username": "lee", "password": "another good password"})
        assert login.status == 200

    # SIGTERM: the server stops and takes its embedded Redis with it; the data stays.
    demo.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(demo.process.wait(), 30) == 0, "".join(demo.output[-20:])
    assert not socket_path_for(tmp_path).exists() or not _redis_answers(socket_path_for(tmp_path))
    assert (tmp_path / "appendonlydir").exists() or list(tmp_path.glob("*.aof*"))

    verify = subprocess.run([*PORCHLIGHT, "audit", "verify"], capture_output=True, text=True,
                            env=_env(tmp_path), timeout=60)
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stderr


def _redis_answers(path: Path) -> bool:
    import redis

    try:
        return bool(redis.Redis(unix_socket_path=str(path), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def test_the_commands_but_serve_leave_the_media_stack_unloaded() -> None:
    # `porchlight deliver` runs beside every server: without aiortc and PyAV it holds ~45 MB less.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, server.cli, server.deliver; "
                               "print(sorted({'aiortc', 'av', 'server.app', 'server.media.room'} & set(sys.modules)))"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_serve_help_lists_every_setting() -> None:
    result = subprocess.run([*PORCHLIGHT, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for setting in SETTINGS:
        assert setting.env in result.stdout


def test_bad_settings_are_reported_one_line_each_and_the_server_does_not_start(tmp_path: Path) -> None:
    env = _env(tmp_path, PORCHLIGHT_PORT="eighty", PORCHLIGHT_RECONNECT_GRACE_SECONDS="-5",
               PORCHLIGHT_PUBLIC_URL="example.com", PORCHLIGHT_SECRET_KEY="short", PORCHLIGHT_COLOUR="blue",
               PORCHLIGHT_ICE_SERVERS='{"urls": 1}')
    result = subprocess.run([*PORCHLIGHT, "serve"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(problems) == 6
    for name in ("PORCHLIGHT_PORT", "PORCHLIGHT_RECONNECT_GRACE_SECONDS", "PORCHLIGHT_PUBLIC_URL",
                 "PORCHLIGHT_SECRET_KEY", "PORCHLIGHT_COLOUR", "PORCHLIGHT_ICE_SERVERS"):
        assert any(name in p for p in problems), name
    assert "short" not in result.stderr  # a secret is never echoed back


def test_settings_defaults_and_overrides(tmp_path: Path) -> None:
    settings = Settings.from_env({"PORCHLIGHT_DATA_DIR": str(tmp_path), "PORCHLIGHT_PORT": "9000",
                                  "PORCHLIGHT_ICE_SERVERS": json.dumps([{"urls": "turn:turn.example:3478"}])})
    assert settings.reconnect_grace_seconds == 120 and settings.heartbeat_timeout_seconds == 30
    assert settings.staff_idle_timeout_seconds == 900 and settings.billing_retry_base_seconds == 5
    assert settings.public_url == "http://127.0.0.1:9000"
    assert settings.ice_servers == ({"urls": "turn:turn.example:3478"},)
    assert not settings.secure_cookies
    # The generated secret is kept, so links survive a restart.
    again = Settings.from_env({"PORCHLIGHT_DATA_DIR": str(tmp_path)})
    assert again.secret_key == settings.secret_key and len(settings.secret_key) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert Settings.from_env({"PORCHLIGHT_PUBLIC_URL": "https://care.example.org",
                              "PORCHLIGHT_DATA_DIR": str(tmp_path)}).secure_cookies
    with pytest.raises(SettingsError):
        Settings.from_env({"PORCHLIGHT_REDIS_URL": "http://nope", "PORCHLIGHT_DATA_DIR": str(tmp_path)})


def test_user_add_refuses_a_taken_username_and_a_short_password(tmp_path: Path) -> None:
    env = _env(tmp_path)
    first = subprocess.run([*PORCHLIGHT, "user", "add", "sam", "--role", "admin"], input="long enough pw\n",
                           capture_output=True, text=True, env=env, timeout=60)
    assert first.returncode == 0, first.stderr
    taken = subprocess.run([*PORCHLIGHT, "user", "add", "sam", "--role", "admin"], input="long enough pw\n",
                           capture_output=True, text=True, env=env, timeout=60)
    assert taken.returncode == 1 and "taken" in taken.stderr
    short = subprocess.run([*PORCHLIGHT, "user", "add", "kim", "--role", "admin"], input="short\n",
                           capture_output=True, text=True, env=env, timeout=60)
    assert short.returncode == 1 and "password" in short.stderr


async def _demo_once(data_dir: Path, *args: str, **env: str) -> tuple[str, str]:
    """Run `porchlight demo [args]` until its banner is out, stop it; (its output, its URL)."""
    process = await asyncio.create_subprocess_exec(
        *PORCHLIGHT, "demo", *args, env=_env(data_dir, **env), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not lines or not lines[-1].startswith("Press Ctrl-C to stop the server."):
                line = (await process.stdout.readline()).decode()
                assert line, "the server exited: " + "".join(lines)
                lines.append(line)
        url = re.search(r"Porchlight is running at (https?://\S+)", "".join(lines))
        assert url, "".join(lines)
        if args == ("--https",):
            async with aiohttp.ClientSession() as http:  # self-signed: nothing to verify it against
                port = url.group(1).rsplit(":", 1)[1]
                health = await http.get(f"https://127.0.0.1:{port}/healthz", ssl=False)
                assert health.status == 200
        return "".join(lines), url.group(1)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 30)


async def test_demo_ends_with_its_banner_and_keeps_its_logins_across_restarts(tmp_path: Path) -> None:
    first, _ = await _demo_once(tmp_path)
    tail = first.rstrip().splitlines()[-10:]
    assert tail[0].startswith("  (the passwords stay the same") and tail[-1] == "Press Ctrl-C to stop the server."
    assert any("sign in as facilitator" in line for line in tail)
    again, _ = await _demo_once(tmp_path)
    logins = r"username (\w+)\s+password (\S+)"
    assert re.findall(logins, first) == re.findall(logins, again) and len(re.findall(logins, first)) == 2
    assert oct((tmp_path / "demo-logins.json").stat().st_mode & 0o777) == "0o600"


async def test_demo_https_serves_a_self_signed_certificate_for_phones(tmp_path: Path) -> None:
    output, url = await _demo_once(tmp_path, "--https", PORCHLIGHT_HOST="127.0.0.1")
    assert url.startswith("https://")
    links = re.findall(r"(https://\S+/j/\S+)", output)
    assert len(links) == 3 and all(link.startswith(url) for link in links)
    assert oct((tmp_path / "tls" / "key.pem").stat().st_mode & 0o777) == "0o600"
