"""What reaches the logs: never a join token, a session cookie or a CSRF token, whatever logger
prints the request (aiohttp's own included); each request's id, in its log lines, its response
and its error body; text or JSON lines."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis.exceptions
from aiohttp.test_utils import TestClient, TestServer

from server import logs
from server.app import create_app
from server.auth.sessions import COOKIE_NAME
from server.clock import ManualClock
from server.services import SERVICES
from server.settings import Settings, SettingsError
from server.store.connection import Redis
from tests.helpers import Api

GENERATED_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


async def raw_request(client: TestClient, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(data)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


async def access_records(caplog: pytest.LogCaptureFixture, containing: str) -> list[logging.LogRecord]:
    """The access log is written just after the response is sent: wait for its line."""
    async with asyncio.timeout(5):
        while True:
            found = [r for r in caplog.records if r.name == "aiohttp.access" and containing in r.getMessage()]
            if found:
                return found
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("shape", [
    b"GET /j/{token}\x01 HTTP/1.1\r\nHost: x\r\n\r\n",  # the request line, quoted in the error
    b"GET / HTTP/1.1\r\nHost: x\r\nCookie: {cookie_name}={cookie}\x00\r\n\r\n",  # a header line, quoted
    b"GET /j/{token} HTTP/1.1\r\nHost: x\r\nX-CSRF-Token: {csrf}\x7f\r\n\r\n",
], ids=["request-line", "cookie-header", "csrf-header"])
async def test_aiohttps_own_error_log_of_a_malformed_request_holds_no_secret(
    api: Api, caplog: pytest.LogCaptureFixture, shape: bytes
) -> None:
    world = await api.world(patients=1)
    staff = world.admin
    secrets = {"token": world.tokens[0], "cookie": staff.cookie, "csrf": staff.csrf}
    data = shape.replace(b"{cookie_name}", COOKIE_NAME.encode())
    for name, value in secrets.items():
        data = data.replace(b"{" + name.encode() + b"}", value.encode())
    with caplog.at_level(logging.DEBUG, logger="aiohttp"):
        answer = await raw_request(api.client, data)
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    server_records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert server_records and "[redacted]" in caplog.text  # aiohttp did quote the line
    for value in secrets.values():
        assert value not in caplog.text


async def test_access_log_holds_no_token_and_names_the_request(
    aiohttp_client: Any, settings: Settings, redis: Redis, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")  # before a connection caches "disabled"
    server = TestServer(create_app(settings, redis=redis, clock=clock))
    await server.start_server(access_log_class=logs.AccessLogger)  # as `porchlight serve` runs it
    client = await aiohttp_client(server)
    api = Api(client, redis, clock, settings)
    world = await api.world(patients=1)
    token = world.tokens[0]
    resp = await client.get(f"/j/{token}?token={token}", headers={"X-Request-ID": "visit-42"})
    assert resp.status == 200
    await resp.read()
    records = await access_records(caplog, "/j/")
    assert [r.getMessage().split('"')[1] for r in records] == ["GET /j/[redacted]"]  # no query string either
    assert getattr(records[0], "request_id", None) == "visit-42"
    assert token not in caplog.text


async def test_the_default_access_log_format_is_redacted_too(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    world = await api.world(patients=1)
    token = world.tokens[0]
    await (await api.client.get(f"/j/{token}/calendar.ics?token={token}", headers={"Connection": "close"})).read()
    assert await access_records(caplog, "calendar.ics")
    assert "/j/[redacted]" in caplog.text and token not in caplog.text


@pytest.mark.parametrize(("sent", "kept"), [
    (None, False), ("ok-id_1.2", True), ("x" * 64, True), ("x" * 65, False), ("a b", False),
    ("<script>", False), ("id\u00e9", False),
])
async def test_every_response_and_error_body_carries_the_request_id(
    api: Api, sent: str | None, kept: bool
) -> None:
    world = await api.world(patients=0)
    headers = {"X-Request-ID": sent} if sent is not None else {}
    for path, status in (("/healthz", 200), ("/api/v1/sessions/ses_nope", 404)):
        resp = await api.client.get(path, headers={**headers, "Cookie": f"{COOKIE_NAME}={world.admin.cookie}"})
        assert resp.status == status
        request_id = resp.headers["X-Request-ID"]
        assert request_id == sent if kept else (GENERATED_ID.match(request_id) and request_id != sent)
        if status >= 400:
            assert (await resp.json())["error"]["request_id"] == request_id


async def test_log_lines_written_during_a_request_carry_its_id(
    api: Api, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await api.world(patients=0)

    async def redis_down(*args: Any, **kwargs: Any) -> None:
        raise redis.exceptions.ConnectionError("Redis is down")

    monkeypatch.setattr(api.client.app[SERVICES].staff_sessions, "resume", redis_down)
    with caplog.at_level(logging.WARNING, logger="porchlight"):
        resp = await api.client.get("/api/v1/groups", headers={"X-Request-ID": "outage-1",
                                                                "Cookie": f"{COOKIE_NAME}={world.admin.cookie}"})
    assert resp.status == 503
    assert (await resp.json())["error"] == {"code": "unavailable", "request_id": "outage-1",
                                            "message": "the service is temporarily unavailable; try again"}
    [record] = [r for r in caplog.records if r.name == "porchlight"]
    assert getattr(record, "request_id", None) == "outage-1"


async def test_a_websocket_upgrade_names_its_request(api: Api) -> None:
    resp = await api.client.get("/api/v1/ws", headers={"X-Request-ID": "ws-7", "Connection": "Upgrade",
                                                        "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert resp.status == 101 and resp.headers["X-Request-ID"] == "ws-7"
    resp.close()


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure() owns the root logger, as the CLI does; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_are_one_object_a_line_redacted(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", "json")
    try:
        raise ValueError("bad cookie: porchlight_session=SECRETVALUE")
    except ValueError:
        logging.getLogger("server.somewhere").exception("failed on /j/SECRETTOKEN with\na second line")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "ERROR" and entry["logger"] == "server.somewhere" and entry["time"].endswith("Z")
    assert entry["message"] == "failed on /j/[redacted] with\na second line"
    assert "ValueError" in entry["exception"] and "SECRET" not in lines[0]
    assert "request_id" not in entry  # written outside any request


def test_text_lines_name_the_request(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", "text")
    logging.getLogger("server.somewhere").info("hello")
    assert capsys.readouterr().err.rstrip().endswith("INFO server.somewhere [-]: hello")


def test_log_format_setting() -> None:
    env = {"PORCHLIGHT_SECRET_KEY": "k" * 40}
    assert Settings.from_env(env).log_format == "text"
    assert Settings.from_env({**env, "PORCHLIGHT_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(SettingsError):
        Settings.from_env({**env, "PORCHLIGHT_LOG_FORMAT": "xml"})


async def test_ice_libraries_do_not_log_patients_addresses(api: Api) -> None:
    for name in ("aioice", "aiortc"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO)
