"""The tools of a running group session (CONTRACT.md v1.1, "In the session"): the roster's
media state and hands, chat, a message to one waiting patient, "Mute all", and patients told
when their facilitator has dropped and when they are back."""

from __future__ import annotations

from typing import Any

from server.services import SERVICES
from tests.helpers import Api, Socket, World


async def _room(api: Api, patients: int = 3, admitted: int = 2) -> tuple[World, str, Socket, list[Socket]]:
    world = await api.world(patients=patients)
    session_id = await api.open(world)
    host = await api.staff_socket(world.facilitator, session_id=session_id)
    socks = [await api.patient(token) for token in world.tokens]
    ids = [p["id"] for p in world.patients[:admitted]]
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": ids})
    for sock in socks[:admitted]:
        await sock.until("admitted")
    return world, session_id, host, socks


def _entry(frame: dict[str, Any], pid: str) -> dict[str, Any] | None:
    return next((p for p in frame["participants"] if p["id"] == pid), None)


async def test_the_roster_says_who_is_muted_has_the_camera_off_or_a_hand_raised(api: Api) -> None:
    world, _, host, socks = await _room(api)
    alex = world.patients[0]["id"]
    first = await host.until("roster", lambda f: _entry(f, alex) is not None)
    assert {k: _entry(first, alex)[k] for k in ("audio", "video", "hand")} == {  # type: ignore[index]
        "audio": False, "video": False, "hand": False}  # nothing sent yet counts as off
    assert all({"audio", "video", "hand"} <= set(p) for p in first["participants"])

    await socks[0].send({"type": "media_state", "audio": True, "video": False})
    await host.until("roster", lambda f: (_entry(f, alex) or {}).get("audio") is True)
    await socks[0].send({"type": "hand", "raised": True})
    raised = await socks[1].until("roster", lambda f: (_entry(f, alex) or {}).get("hand") is True)
    assert _entry(raised, alex)["video"] is False  # type: ignore[index]
    await socks[0].send({"type": "hand", "raised": False})
    await host.until("roster", lambda f: (_entry(f, alex) or {}).get("hand") is False)

    await socks[2].send({"type": "hand", "raised": True})  # still waiting: not theirs to raise
    assert (await socks[2].until("error"))["code"] == "not_admitted"


async def test_the_roster_says_who_has_no_microphone_or_no_camera(api: Api) -> None:
    """A patient whose browser blocks the camera, or who has no microphone, may still join; the
    staff see "no camera" rather than a patient who chose to turn it off."""
    world, _, host, (alex, _, waiting) = await _room(api)
    pid = world.patients[0]["id"]
    first = await host.until("roster", lambda f: _entry(f, pid) is not None)
    assert {k: _entry(first, pid)[k] for k in ("microphone", "camera")} == {  # type: ignore[index]
        "microphone": True, "camera": True}  # until told otherwise
    await alex.send({"type": "media_state", "audio": True, "video": False, "camera": False})
    told = await host.until("roster", lambda f: (_entry(f, pid) or {}).get("camera") is False)
    assert _entry(told, pid)["microphone"] is True  # type: ignore[index]
    await alex.send({"type": "media_state", "audio": False, "video": False, "microphone": False, "camera": False})
    await host.until("roster", lambda f: (_entry(f, pid) or {}).get("microphone") is False)
    await alex.send({"type": "media_state", "audio": True, "video": True, "microphone": True, "camera": True})
    await host.until("roster", lambda f: (_entry(f, pid) or {}).get("camera") is True)

    await alex.send({"type": "media_state", "audio": True, "video": True, "camera": "no"})
    assert (await alex.until("error"))["code"] == "bad_request"
    await waiting.send({"type": "media_state", "audio": True, "video": True, "camera": False})
    assert (await waiting.until("error"))["code"] == "not_admitted"


async def test_group_chat_reaches_the_session_and_to_staff_reaches_only_the_staff(api: Api) -> None:
    world, session_id, host, (alex, blair, waiting) = await _room(api)
    await alex.send({"type": "chat", "text": "I can't hear you"})
    for sock in (host, alex, blair):
        got = await sock.until("chat")
        assert got["text"] == "I can't hear you" and got["private"] is False
        assert got["from"] == {"id": world.patients[0]["id"], "display_name": "Patient 0", "role": "patient"}
        assert got["id"] and got["at"]

    await waiting.send({"type": "chat", "text": "the link says wait?", "to": "staff"})
    private = await host.until("chat")
    assert private["private"] is True and private["from"]["id"] == world.patients[2]["id"]
    assert (await waiting.until("chat"))["text"] == "the link says wait?"  # back to its sender
    await waiting.send({"type": "chat", "text": "hello everyone"})  # a waiting patient: staff only
    assert (await waiting.until("error"))["code"] == "not_admitted"

    await host.send({"type": "chat", "text": "Welcome, everyone"})
    assert (await blair.until("chat"))["from"]["role"] == "facilitator"
    assert (await host.until("chat"))["text"] == "Welcome, everyone"  # its sender sees it too
    # Nothing private or from the waiting room reached the admitted patients.
    assert [f["text"] for f in blair.seen if f["type"] == "chat"] == ["I can't hear you", "Welcome, everyone"]

    assert (await api.post(world.facilitator, f"/sessions/{session_id}/chat", {"enabled": False})) == {
        "chat_enabled": False}
    await alex.send({"type": "chat", "text": "anyone?"})
    assert (await alex.until("error"))["code"] == "chat_disabled"
    await alex.send({"type": "chat", "text": "may I leave early?", "to": "staff"})
    assert (await host.until("chat"))["text"] == "may I leave early?"
    await alex.send({"type": "chat", "text": "x" * 501, "to": "staff"})
    assert (await alex.until("error"))["code"] == "bad_request"


async def test_a_message_to_one_waiting_patient_reaches_only_them(api: Api) -> None:
    world, session_id, _, (alex, _, waiting, other) = await _room(api, patients=4, admitted=1)
    target = world.patients[2]["id"]
    sent = await api.post(world.facilitator, f"/sessions/{session_id}/message",
                          {"text": "Five more minutes, Patient 2", "patient_id": target})
    assert sent == {"delivered": 1}
    assert (await waiting.until("message"))["text"] == "Five more minutes, Patient 2"
    refused = await api.post(world.facilitator, f"/sessions/{session_id}/message",
                             {"text": "hi", "patient_id": world.patients[0]["id"]}, expect=409)
    assert refused["error"]["code"] == "not_waiting"  # Patient 0 is in the session
    await api.post(world.facilitator, f"/sessions/{session_id}/message", {"text": "to all who wait"})
    assert (await other.until("message"))["text"] == "to all who wait"  # the one before never reached them
    assert not [f for f in alex.seen if f["type"] == "message"]


async def test_mute_all_mutes_every_admitted_patient(api: Api) -> None:
    world, session_id, _, (alex, blair, waiting) = await _room(api)
    muted = await api.post(world.facilitator, f"/sessions/{session_id}/mute", {"all": True})
    assert sorted(muted["muted"]) == sorted(p["id"] for p in world.patients[:2])
    for sock in (alex, blair):
        await sock.until("muted")
    bad = await api.post(world.facilitator, f"/sessions/{session_id}/mute",
                         {"all": True, "patient_id": world.patients[0]["id"]}, expect=400)
    assert bad["error"]["code"] == "bad_request"


async def test_patients_are_told_when_their_facilitator_drops_and_comes_back(api: Api) -> None:
    world, session_id, host, (alex, blair, _) = await _room(api)
    await host.close()
    for sock in (alex, blair):
        try:
            await sock.until("facilitator_away")
        except TimeoutError:  # say what the door knew (a staff socket's end once waited on its heartbeat)
            door = api.client.app[SERVICES].lobby.doors[world.group["id"]]
            raise AssertionError(
                f"no facilitator_away: staff sockets {len(door.presence.staff)}, facilitator present "
                f"{door.tools.facilitator_present}, door locked {door.lock.locked()}, "
                f"frames seen {[f['type'] for f in sock.seen]}") from None
    back = await api.staff_socket(world.facilitator, session_id=session_id)
    for sock in (alex, blair):
        await sock.until("facilitator_back")
    await back.close()


async def test_a_patient_admitted_while_no_facilitator_is_connected_is_told_so(api: Api) -> None:
    world = await api.world(patients=1)
    session_id = await api.open(world)  # opened over HTTP; no facilitator on a socket
    sock = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True})
    await sock.until("admitted")
    await sock.until("facilitator_away")
    host = await api.staff_socket(world.facilitator, session_id=session_id)
    await sock.until("facilitator_back")
    await host.close()
