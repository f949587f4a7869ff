"""Input no client should send: text that cannot be stored, JSON nested without end, ids of any
shape, a staff WebSocket opened from another site. Each gets a 400-class answer, never a 500,
and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from server.auth.sessions import COOKIE_NAME
from tests.helpers import Api, World
from tests.test_bad_input import _snapshot

LONE_SURROGATE = '"\\ud800"'  # JSON text: a valid escape of a code point UTF-8 cannot encode


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture
async def world(api: Api) -> tuple[World, str]:
    world = await api.world(patients=1)
    return world, await api.open(world)


# (path, JSON body as text, the field the error must name)
UNSTORABLE_TEXT: list[tuple[str, str, str]] = [
    ("/patients", '{"display_name": ' + LONE_SURROGATE + "}", "display_name"),
    ("/patients", '{"display_name": "Ann\\u0000"}', "display_name"),
    ("/patients", '{"display_name": "Ann\\nSmith"}', "display_name"),
    ("/patients", '{"display_name": "Ann", "external_id": "MRN\\u001b[31m"}', "external_id"),
    ("/groups", '{"name": "Evening\\u0007", "program": "IOP"}', "name"),
    ("/groups", '{"name": "X", "program": "IOP", "brand": {"welcome_text": "Hi\\u0000"}}', "welcome_text"),
    ("/groups", '{"name": "X", "program": "IOP", "brand": {"name": ' + LONE_SURROGATE + "}}", "brand.name"),
    ("/sessions/{session}/message", '{"text": "come in\\u0085"}', "text"),
    ("/sessions/{session}/message", '{"text": "a\\r\\nb"}', "text"),
]


@pytest.mark.parametrize(("path", "body", "field"), UNSTORABLE_TEXT, ids=[b for _, b, _ in UNSTORABLE_TEXT])
async def test_text_that_cannot_be_stored_or_shown_is_refused_naming_the_field(
    api: Api, world: tuple[World, str], path: str, body: str, field: str
) -> None:
    w, session_id = world
    before = await _snapshot(api)
    answer = await api.request(w.admin, "POST", "/api/v1" + path.replace("{session}", session_id),
                               raw=body.encode(), expect=400)
    assert answer["error"]["code"] == "bad_request"
    assert answer["error"]["message"].startswith(f"{field}:")
    assert await _snapshot(api) == before
    for page in ("/admin", "/admin/attendance", f"/admin/groups/{w.group['id']}"):  # still readable
        resp = await api.client.get(page, headers={"Cookie": f"{COOKIE_NAME}={w.admin.cookie}"})
        assert resp.status == 200


async def test_newlines_are_kept_where_text_is_several_lines(api: Api, world: tuple[World, str]) -> None:
    w, session_id = world
    welcome = "Welcome.\nThe group starts at six."
    group = await api.post(w.admin, "/groups", {"name": "Mornings", "program": "OP",
                                                "brand": {"welcome_text": welcome}}, expect=201)
    assert group["brand"]["welcome_text"] == welcome
    patient = await api.patient(w.tokens[0])
    await api.post(w.facilitator, f"/sessions/{session_id}/message", {"text": "Two minutes.\nThank you."})
    assert (await patient.until("message"))["text"] == "Two minutes.\nThank you."


@pytest.mark.parametrize("body", [
    b'{"username": ' + nested(20_000).encode() + b', "password": "x"}',  # recursion in json.loads
    b'{"username": "admin", "password": ' + nested(33).encode() + b"}",
    b'{"username": "adm\xffin", "password": "x"}',  # not UTF-8
    b'{"username": "admin", "password": ' + LONE_SURROGATE.encode() + b"}",
    b'{"username": "admin", "password": NaN}',
], ids=["deep", "33-deep", "invalid-utf8", "lone-surrogate", "nan"])
async def test_login_refuses_hostile_json_with_400(api: Api, world: tuple[World, str], body: bytes) -> None:
    resp = await api.client.post("/api/v1/login", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "bad_request"


async def test_json_nested_32_deep_is_still_read(api: Api, world: tuple[World, str]) -> None:
    w, _ = world
    body = '{"display_name": "Ann", "extra": ' + nested(31) + "}"  # the object plus 31 lists: 32 deep
    answer = await api.request(w.admin, "POST", "/api/v1/patients", raw=body.encode(), expect=400)
    assert answer["error"]["message"] == "unknown field(s): extra"  # read, then refused for what it says


@pytest.mark.parametrize("frame", [
    '{"type": "hello", "token": ' + nested(20_000) + "}",
    '{"type": "hello", "token": ' + LONE_SURROGATE + ', "location": "home"}',
    '{"type": "hello", "location": ' + LONE_SURROGATE + "}",
])
async def test_a_hostile_first_frame_is_answered_and_hello_still_works(
    api: Api, world: tuple[World, str], frame: str
) -> None:
    w, _ = world
    sock = await api.ws()
    await sock.ws.send_str(frame)
    assert (await sock.until("error"))["code"] == "bad_request"
    await sock.send({"type": "hello", "token": w.tokens[0], "location": "home"})
    await sock.until("waiting")


@pytest.mark.parametrize("hello", [
    {"session_id": "ses_" + "x" * 5000},
    {"session_id": ["ses_x"]},
    {"session_id": "ses:*"},
    {"group_id": "../grp"},
    {"group_id": {"$ne": 1}},
    {"session_id": "", "group_id": "grp_x"},
], ids=["long", "list", "odd-characters", "path", "object", "both"])
async def test_staff_hello_with_a_malformed_id_is_a_bad_request(
    api: Api, world: tuple[World, str], hello: dict[str, Any]
) -> None:
    w, session_id = world
    sock = await api.ws(w.facilitator)
    await sock.send({"type": "hello", **hello})
    error = await sock.until("error")
    assert error["code"] == "bad_request", error
    await sock.send({"type": "hello", "session_id": session_id})  # the socket stays usable
    await sock.until("waiting_list")


async def test_staff_websocket_from_another_site_is_forbidden(api: Api, world: tuple[World, str]) -> None:
    w, session_id = world
    foreign = await api.ws(w.facilitator, origin="https://evil.example")
    await foreign.send({"type": "hello", "session_id": session_id})
    assert (await foreign.until("error"))["code"] == "forbidden"
    assert await foreign.closed() == 4403
    sibling = await api.ws(w.facilitator, origin="http://other.porchlight.test")
    await sibling.send({"type": "hello", "group_id": w.group["id"]})
    assert (await sibling.until("error"))["code"] == "forbidden"
    # Our own pages (default port spelled out or not) and clients that send no Origin are welcome.
    for origin in (api.settings.public_url, api.settings.public_url + ":80", None):
        own = await api.ws(w.facilitator, origin=origin)
        await own.send({"type": "hello", "session_id": session_id})
        await own.until("waiting_list")
        await own.close()
    # A patient's link is its credential: the page that opens it may be anywhere (an app, a portal).
    patient = await api.ws(origin="https://portal.example")
    await patient.send({"type": "hello", "token": w.tokens[0], "location": "home"})
    await patient.until("waiting")
