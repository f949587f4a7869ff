"""Bad input gets a JSON error with a stable code, and changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.realtime.connection import DIRECT_WRITE_LIMIT, Connection
from server.services import SERVICES
from tests.helpers import Api, World


async def _snapshot(api: Api) -> dict[str, Any]:
    """Everything in Redis except the audit log and login counters, which record attempts."""
    out = {}
    for key in sorted(await api.redis.keys("*")):
        if key.startswith(("pl:audit", "pl:login", "pl:staffsession", "pl:node")):  # attempts; heartbeats
            continue
        kind = await api.redis.type(key)
        if kind == "string":
            out[key] = await api.redis.get(key)
        elif kind == "hash":
            out[key] = await api.redis.hgetall(key)
        elif kind == "list":
            out[key] = await api.redis.lrange(key, 0, -1)
        elif kind == "zset":
            out[key] = await api.redis.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = await api.redis.smembers(key)
    return out


# (method, path template, body, expected status, expected code)
BAD_REQUESTS: list[tuple[str, str, Any, int, str]] = [
    ("POST", "/groups", b"{not json", 400, "bad_request"),
    ("POST", "/groups", [], 400, "bad_request"),
    ("POST", "/groups", {"name": "X"}, 400, "bad_request"),
    ("POST", "/groups", {"name": "X", "program": "ZZZ"}, 400, "bad_request"),
    ("POST", "/groups", {"name": 7, "program": "IOP"}, 400, "bad_request"),
    ("POST", "/groups", {"name": "", "program": "IOP"}, 400, "bad_request"),
    ("POST", "/groups", {"name": "x" * 121, "program": "IOP"}, 400, "bad_request"),
    ("POST", "/groups", {"name": "X", "program": "IOP", "surprise": 1}, 400, "bad_request"),
    ("POST", "/groups", {"name": "X", "program": "IOP", "timezone": "Mars/Olympus"}, 400, "bad_request"),
    ("POST", "/groups", {"name": "X", "program": "IOP", "capacity": "ten"}, 400, "bad_request"),
    ("POST", "/groups", {"name": "X", "program": "IOP", "capacity": True}, 400, "bad_request"),
    ("POST", "/groups", {"name": "X", "program": "IOP", "facilitator_ids": ["usr_nobody"]}, 400, "unknown_user"),
    ("POST", "/groups", {"name": "X", "program": "IOP", "schedule": [{"weekday": 9, "start": "18:00",
                                                                      "minutes": 60}]}, 400, "bad_request"),
    ("POST", "/groups", {"name": "X", "program": "IOP", "schedule": [{"weekday": 1, "start": "25:00",
                                                                      "minutes": 60}]}, 400, "bad_request"),
    ("POST", "/groups", {"name": "X", "program": "IOP", "brand": {"primary_color": "red"}}, 400, "bad_request"),
    ("POST", "/groups", {"name": "X", "program": "IOP", "brand": {"logo_url": "javascript:alert(1)"}}, 400,
     "bad_request"),
    ("POST", "/groups", {"name": "X", "program": "IOP", "billing": {"code": "90853; DROP"}}, 400, "bad_request"),
    ("PATCH", "/groups/{group}", {"capacity": 0}, 400, "bad_request"),
    ("PATCH", "/groups/grp_nope", {"name": "Y"}, 404, "not_found"),
    ("POST", "/patients", {"display_name": ""}, 400, "bad_request"),
    ("POST", "/patients", {"display_name": "x" * 61}, 400, "bad_request"),
    ("POST", "/patients", {"display_name": ["A"]}, 400, "bad_request"),
    ("POST", "/groups/{group}/enrollments", {"patient_id": "pat_nobody"}, 404, "not_found"),
    ("POST", "/groups/{group}/enrollments", {"patient_id": "{patient}"}, 409, "already_enrolled"),
    ("POST", "/groups/{group}/enrollments", {"patient_id": "{patient}", "ends_on": "tomorrow"}, 400,
     "bad_request"),
    ("POST", "/groups/{group}/enrollments", {"patient_id": "../../etc"}, 400, "bad_request"),
    ("POST", "/groups/grp_nope/enrollments", {"patient_id": "{patient}"}, 404, "not_found"),
    ("POST", "/enrollments/enr_nope/rotate-link", {}, 404, "not_found"),
    ("POST", "/groups/grp_nope/sessions", {}, 404, "not_found"),
    ("POST", "/sessions/ses_nope/admit", {"all": True}, 404, "not_found"),
    ("GET", "/sessions/ses_nope", None, 404, "not_found"),
    ("POST", "/sessions/{session}/admit", {}, 400, "bad_request"),
    ("POST", "/sessions/{session}/admit", {"patient_ids": []}, 400, "bad_request"),
    ("POST", "/sessions/{session}/admit", {"patient_ids": "pat_x"}, 400, "bad_request"),
    ("POST", "/sessions/{session}/admit", {"patient_ids": ["{patient}"], "all": True}, 400, "bad_request"),
    ("POST", "/sessions/{session}/admit", {"patient_ids": ["{patient}"]}, 409, "not_waiting"),
    ("POST", "/sessions/{session}/decline", {"patient_id": "{patient}"}, 409, "not_waiting"),
    ("POST", "/sessions/{session}/remove", {"patient_id": "{patient}"}, 409, "not_in_session"),
    ("POST", "/sessions/{session}/send-back", {"patient_id": "{patient}"}, 409, "not_in_session"),
    ("POST", "/sessions/{session}/mute", {"patient_id": "{patient}"}, 409, "not_in_session"),
    ("POST", "/sessions/{session}/message", {"text": ""}, 400, "bad_request"),
    ("POST", "/sessions/{session}/message", {"text": "x" * 501}, 400, "bad_request"),
    ("POST", "/groups/{group}/sessions", {}, 409, "session_open"),
    ("DELETE", "/groups/{group}", None, 405, "method_not_allowed"),
    ("GET", "/no/such/thing", None, 404, "not_found"),
]


@pytest.fixture
async def world(api: Api) -> tuple[World, str]:
    world = await api.world(patients=1)
    return world, await api.open(world)


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), BAD_REQUESTS,
                         ids=[f"{m} {p} {s} {c}" for m, p, _, s, c in BAD_REQUESTS])
async def test_bad_request_gets_a_stable_error_and_changes_nothing(
    api: Api, world: tuple[World, str], method: str, path: str, body: Any, status: int, code: str
) -> None:
    w, session_id = world
    ids = {"{group}": w.group["id"], "{session}": session_id, "{patient}": w.patients[0]["id"]}

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            for k, v in ids.items():
                value = value.replace(k, v)
            return value
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    before = await _snapshot(api)
    raw = body if isinstance(body, bytes) else (json.dumps(fill(body)).encode() if body is not None else None)
    answer = await api.request(w.admin, method, "/api/v1" + fill(path), raw=raw, expect=status)
    assert answer["error"]["code"] == code
    assert isinstance(answer["error"]["message"], str) and answer["error"]["message"]
    assert await _snapshot(api) == before


async def test_oversized_json_is_refused_with_413(api: Api, world: tuple[World, str]) -> None:
    w, _ = world
    before = await _snapshot(api)
    big = json.dumps({"display_name": "x" * (api.settings.max_json_bytes + 10)}).encode()
    answer = await api.request(w.admin, "POST", "/api/v1/patients", raw=big, expect=413)
    assert answer["error"]["code"] == "payload_too_large"
    assert await _snapshot(api) == before


@pytest.mark.parametrize("frame", [
    "not json", "[]", '{"no_type": 1}', '{"type": 5}', '{"type": "dance"}',
    '{"type": "media_state", "audio": "yes", "video": true}', '{"type": "hello", "token": "again"}',
])
async def test_bad_frames_get_bad_request_and_the_socket_stays_open(
    api: Api, world: tuple[World, str], frame: str
) -> None:
    w, session_id = world
    patient = await api.patient(w.tokens[0])
    await patient.ws.send_str(frame)
    error = await patient.until("error")
    assert error["code"] == "bad_request"
    await api.post(w.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [w.patients[0]["id"]]})
    await patient.until("admitted")  # still open and working


async def test_bad_frame_before_hello_is_answered_and_hello_still_works(api: Api, world: tuple[World, str]) -> None:
    w, _ = world
    sock = await api.ws()
    await sock.ws.send_str("{oops")
    assert (await sock.until("error"))["code"] == "bad_request"
    await sock.send({"type": "leave"})
    assert (await sock.until("error"))["code"] == "bad_request"
    await sock.send({"type": "hello", "token": w.tokens[0], "location": "home"})
    await sock.until("waiting")


async def test_oversized_frame_closes_the_socket_with_1009(api: Api, world: tuple[World, str]) -> None:
    w, _ = world
    patient = await api.patient(w.tokens[0])
    await patient.ws.send_str(json.dumps({"type": "media_state", "pad": "x" * (api.settings.max_ws_frame_bytes + 1)}))
    assert await patient.closed() == 1009


@pytest.mark.parametrize("token", ["", "garbage", "WyJlbnJfeCIsMV0.forgedsignature", "a" * 2000, 12345])
async def test_forged_tokens_are_refused_with_4401(api: Api, world: tuple[World, str], token: Any) -> None:
    sock = await api.ws()
    await sock.send({"type": "hello", "token": token, "location": "home"})
    assert (await sock.until("error"))["code"] == "invalid_token"
    assert await sock.closed() == 4401


async def test_rotated_link_stops_at_once_and_the_new_one_works(api: Api, world: tuple[World, str]) -> None:
    w, _ = world
    connected = await api.patient(w.tokens[0])
    rotated = await api.post(w.admin, f"/enrollments/{w.patients[0]['enrollment_id']}/rotate-link")
    assert (await connected.until("error"))["code"] == "invalid_token"
    assert await connected.closed() == 4401
    old = await api.ws()
    await old.send({"type": "hello", "token": w.tokens[0], "location": "home"})
    assert (await old.until("error"))["code"] == "invalid_token"
    resp = await api.client.get(f"/j/{w.tokens[0]}")
    assert resp.status == 404
    await api.patient(rotated["join_url"].rsplit("/j/", 1)[1])
    actions = [e["action"] for e in await _audit(api)]
    assert "link.rotate" in actions


async def test_ended_enrolment_link_stops_working(api: Api, world: tuple[World, str]) -> None:
    w, _ = world
    await api.post(w.admin, f"/enrollments/{w.patients[0]['enrollment_id']}/end")
    sock = await api.ws()
    await sock.send({"type": "hello", "token": w.tokens[0], "location": "home"})
    assert (await sock.until("error"))["code"] == "invalid_token"
    again = await api.post(w.admin, f"/enrollments/{w.patients[0]['enrollment_id']}/end", expect=409)
    assert again["error"]["code"] == "enrollment_ended"


async def test_link_past_the_enrolment_end_date_is_expired(api: Api) -> None:
    world = await api.world(patients=0)
    patient = await api.post(world.admin, "/patients", {"display_name": "Short stay"}, expect=201)
    # The manual clock starts on 2027-01-15; this enrolment ended before that.
    enrollment = await api.post(world.admin, f"/groups/{world.group['id']}/enrollments",
                                {"patient_id": patient["id"], "starts_on": "2026-01-01", "ends_on": "2026-03-31"},
                                expect=201)
    sock = await api.ws()
    await sock.send({"type": "hello", "token": enrollment["join_url"].rsplit("/j/", 1)[1], "location": "home"})
    assert (await sock.until("error"))["code"] == "invalid_token"


async def test_hello_must_come_in_time(api: Api, world: tuple[World, str]) -> None:
    sock = await api.ws()
    # No hello at all: the deadline in the test settings closes the socket.
    code = await sock.closed(timeout=api.settings.hello_deadline_seconds + 5)
    assert code == 4400
    assert sock.seen[-1]["code"] == "hello_timeout"


async def test_slow_client_is_disconnected_not_buffered(api: Api, world: tuple[World, str]) -> None:
    """A client whose queue is full is dropped; the server does not buffer without limit."""
    w, session_id = world
    patient = await api.patient(w.tokens[0])
    door = api.client.app[SERVICES].lobby.doors[w.group["id"]]
    conn: Connection = door.presence.patients[w.patients[0]["id"]]
    # Frames written at once fill the kernel's buffers (the client reads nothing meanwhile: it
    # shares this loop), then the socket's transport up to its limit; then they queue, and a
    # full queue ends the socket. Never more than that is held for it.
    frame = {"type": "message", "text": "x" * 16_000}
    sent = 0
    while conn.close_code is None and sent < 5_000:  # 5,000 x 16 KB: far beyond what may be held
        conn.send(frame)
        sent += 1
        assert conn._transport is not None
        assert conn._transport.get_write_buffer_size() <= DIRECT_WRITE_LIMIT + 17_000
    assert conn.close_code == 1008
    code = await patient.closed()
    assert code in (1008, 1006)


async def _audit(api: Api) -> list[dict[str, Any]]:
    from server.audit import AuditLog

    return await AuditLog(api.redis, api.clock).entries()
