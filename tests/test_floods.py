"""Floods from one client: they are refused, they cannot grow the record, and nobody else notices.

The clock is the test's (ManualClock) and stands still, so a connection's frame budget does
not refill while a test runs: exactly `ws_frame_burst` frames are taken.
"""

from __future__ import annotations

import asyncio

from tests.helpers import Api


async def _media_states(api: Api, staff: object, session_id: str, patient_id: str) -> list[tuple[bool, bool]]:
    return [(e["audio"], e["video"]) for e in await api.events(staff, session_id)  # type: ignore[arg-type]
            if e["type"] == "media_state" and e.get("patient_id") == patient_id]


async def test_a_repeated_media_state_is_recorded_once(api: Api) -> None:
    world = await api.world(patients=1)
    session_id = await api.open(world)
    patient = await api.patient(world.tokens[0])
    pid = world.patients[0]["id"]
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [pid]})
    await patient.until("admitted")
    for _ in range(10):
        await patient.send({"type": "media_state", "audio": True, "video": False})
    await patient.send({"type": "media_state", "audio": False, "video": False})
    async with asyncio.timeout(5):
        while len(await _media_states(api, world.facilitator, session_id, pid)) < 2:
            await asyncio.sleep(0.02)
    assert await _media_states(api, world.facilitator, session_id, pid) == [(True, False), (False, False)]


async def test_a_frame_flood_is_refused_then_disconnected_and_the_room_carries_on(api: Api) -> None:
    world = await api.world(patients=2)
    session_id = await api.open(world)
    flooder = await api.patient(world.tokens[0])
    other = await api.patient(world.tokens[1])
    pid = world.patients[0]["id"]
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True})
    await flooder.until("admitted")
    await other.until("admitted")
    burst = api.settings.ws_frame_burst
    # Alternating states: each frame taken would be a change, so each would be an event.
    for i in range(3 * burst):
        await flooder.send({"type": "media_state", "audio": i % 2 == 0, "video": False})
    assert await flooder.closed() == 1008
    errors = [f for f in flooder.seen if f["type"] == "error"]
    assert [f["code"] for f in errors] == ["rate_limited", "rate_limited"]  # told once, then closed
    # The hello took one frame of the budget; the rest of the burst was acted on, no more.
    assert len(await _media_states(api, world.facilitator, session_id, pid)) == burst - 1
    # The other patient is still in the session and heard: the roster says so.
    other_id = world.patients[1]["id"]
    await other.send({"type": "media_state", "audio": True, "video": True})
    heard = await other.until("roster", lambda f: any(p["id"] == other_id and p["audio"] for p in f["participants"]),
                              timeout=15)
    assert not [f for f in other.seen if f["type"] == "error"], other.seen
    assert heard and await _media_states(api, world.facilitator, session_id, other_id) == [(True, True)]


async def test_a_check_in_loop_is_slowed_and_rings_the_waiting_room_a_bounded_number_of_times(api: Api) -> None:
    world = await api.world(patients=1)
    session_id = await api.open(world)
    limit = api.settings.check_ins_per_minute
    answers = []
    for _ in range(limit + 5):
        sock = await api.patient(world.tokens[0], expect=None)
        first = await sock.next()
        answers.append(first.get("code", first["type"]))
        await sock.send({"type": "leave"})
        await sock.close()
    assert answers == ["waiting"] * limit + ["rate_limited"] * 5
    events = [e for e in await api.events(world.facilitator, session_id) if e["type"] == "waiting"]
    assert len(events) == limit  # each accepted check-in is one arrival; the rest changed nothing
    api.clock.advance(61)  # a minute later they may check in again
    again = await api.patient(world.tokens[0])
    assert again.seen[-1]["type"] == "waiting"
