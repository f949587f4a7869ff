"""The waiting room and admission, through the HTTP API and the WebSocket, as clients see them."""

from __future__ import annotations

from server.services import SERVICES
from tests.helpers import Api, World


async def test_facilitator_admits_a_patient_who_checked_in_with_their_link(api: Api) -> None:
    world = await api.world()
    session_id = await api.open(world)
    host = await api.staff_socket(world.facilitator, session_id=session_id)

    patient = await api.patient(world.tokens[0])
    waiting = patient.seen[-1]
    assert waiting["session_id"] == session_id
    assert waiting["group"] == {"name": "Evening DBT"}
    assert waiting["brand"]["primary_color"].startswith("#")

    listed = await host.until("waiting_list", lambda f: f["waiting"])
    assert [w["patient_id"] for w in listed["waiting"]] == [world.patients[0]["id"]]
    assert listed["waiting"][0]["display_name"] == "Patient 0"
    described = await api.get(world.facilitator, f"/sessions/{session_id}")
    assert [w["patient_id"] for w in described["waiting"]] == [world.patients[0]["id"]]

    answer = await api.post(world.facilitator, f"/sessions/{session_id}/admit",
                            {"patient_ids": [world.patients[0]["id"]]})
    assert answer == {"admitted": [world.patients[0]["id"]]}
    assert (await patient.until("admitted"))["session_id"] == session_id
    roster = await patient.until("roster", lambda f: len(f["participants"]) == 2)
    assert {(p["id"], p["role"]) for p in roster["participants"]} == {
        (world.facilitator.user_id, "facilitator"), (world.patients[0]["id"], "patient")}
    await host.until("waiting_list", lambda f: f["waiting"] == [])
    described = await api.get(world.facilitator, f"/sessions/{session_id}")
    assert described["waiting"] == []
    assert [p["patient_id"] for p in described["participants"]] == [world.patients[0]["id"]]

    kinds = [(e["type"], e["patient_id"]) for e in await api.events(world.facilitator, session_id)]
    pid = world.patients[0]["id"]
    assert kinds == [("waiting", pid), ("admitted", pid), ("joined", pid)]


async def test_patient_before_opening_waits_and_moves_in_when_the_session_opens(api: Api) -> None:
    world = await api.world(schedule=[{"weekday": 0, "start": "18:00", "minutes": 180}])
    watcher = await api.staff_socket(world.facilitator, group_id=world.group["id"])
    patient = await api.patient(world.tokens[1])
    early = patient.seen[-1]
    assert early["session_id"] is None
    assert "not started" in early["message"]
    assert early["next_start"].endswith("Z")
    await watcher.until("waiting_list", lambda f: [w["patient_id"] for w in f["waiting"]] == [world.patients[1]["id"]])

    api.clock.advance(20)  # less than the heartbeat timeout: this test client does not answer pings
    session_id = await api.open(world)
    moved = await patient.until("waiting")
    assert moved["session_id"] == session_id
    events = await api.events(world.facilitator, session_id)
    assert events[0]["type"] == "waiting"
    # Waiting time counts from the opening, not from the early check-in.
    session = await api.get(world.facilitator, f"/sessions/{session_id}")
    assert events[0]["at"] == session["started_at"]
    assert events[0]["checked_in_at"] < events[0]["at"]
    assert (await api.get(world.facilitator, f"/groups/{world.group['id']}"))["open_session_id"] == session_id


async def test_waiting_patient_gets_no_roster_and_no_media_signalling(api: Api) -> None:
    world = await api.world()
    session_id = await api.open(world)
    admitted = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await admitted.until("admitted")

    waiting = await api.patient(world.tokens[1])
    await waiting.send({"type": "offer", "pc": "publish", "sdp": "v=0"})
    assert (await waiting.until("error"))["code"] == "not_admitted"
    await waiting.send({"type": "media_state", "audio": True, "video": True})
    assert (await waiting.until("error"))["code"] == "not_admitted"
    assert not [f for f in waiting.seen if f["type"] in ("roster", "admitted", "waiting_list")]


async def test_admit_all_and_several_are_all_or_nothing(api: Api) -> None:
    world = await api.world(patients=3)
    session_id = await api.open(world)
    sockets = [await api.patient(t) for t in world.tokens]
    ids = [p["id"] for p in world.patients]

    refused = await api.post(world.facilitator, f"/sessions/{session_id}/admit",
                             {"patient_ids": [ids[0], "pat_nobody"]}, expect=409)
    assert refused["error"]["code"] == "not_waiting"
    assert len((await api.get(world.facilitator, f"/sessions/{session_id}"))["waiting"]) == 3

    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": ids[:2]})
    answer = await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True})
    assert answer == {"admitted": [ids[2]]}
    for sock in sockets:
        await sock.until("admitted")
    again = await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [ids[0]]}, expect=409)
    assert again["error"]["code"] == "not_waiting"


async def test_capacity_is_enforced_at_admission(api: Api) -> None:
    world = await api.world(patients=2, capacity=1)
    session_id = await api.open(world)
    for token in world.tokens:
        await api.patient(token)
    refused = await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True}, expect=409)
    assert refused["error"]["code"] == "capacity_reached"
    assert (await api.get(world.facilitator, f"/sessions/{session_id}"))["participants"] == []


async def test_declined_patient_is_told_and_needs_a_new_admission(api: Api) -> None:
    world = await api.world()
    session_id = await api.open(world)
    pid = world.patients[0]["id"]
    patient = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/decline", {"patient_id": pid, "message": "Not today"})
    declined = await patient.until("declined")
    assert declined["message"] == "Not today"
    assert await patient.closed() == 1000

    again = await api.patient(world.tokens[0])
    assert again.seen[-1]["type"] == "waiting"
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [pid]})
    await again.until("admitted")


async def test_removed_patient_leaves_and_returns_only_through_admission(api: Api) -> None:
    world = await api.world()
    session_id = await api.open(world)
    pid = world.patients[0]["id"]
    patient = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [pid]})
    await patient.until("admitted")
    await api.post(world.facilitator, f"/sessions/{session_id}/remove", {"patient_id": pid, "reason": "disruptive"})
    assert (await patient.until("removed"))["reason"] == "disruptive"
    assert await patient.closed() == 1000

    back = await api.patient(world.tokens[0])  # within the grace period, but removal is not a drop
    assert back.seen[-1]["type"] == "waiting"
    left = [e for e in await api.events(world.facilitator, session_id) if e["type"] == "left"]
    assert [e["reason"] for e in left] == ["removed"]


async def test_send_back_returns_the_patient_to_the_waiting_room(api: Api) -> None:
    world = await api.world()
    session_id = await api.open(world)
    host = await api.staff_socket(world.facilitator, session_id=session_id)
    pid = world.patients[0]["id"]
    patient = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [pid]})
    await patient.until("admitted")
    await api.post(world.facilitator, f"/sessions/{session_id}/send-back", {"patient_id": pid})
    await patient.until("sent_back")
    assert (await patient.until("waiting"))["session_id"] == session_id
    await host.until("roster", lambda f: [p["id"] for p in f["participants"]] == [world.facilitator.user_id])
    described = await api.get(world.facilitator, f"/sessions/{session_id}")
    assert [w["patient_id"] for w in described["waiting"]] == [pid]
    await patient.send({"type": "offer", "pc": "publish", "sdp": "v=0"})
    assert (await patient.until("error"))["code"] == "not_admitted"
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [pid]})
    await patient.until("admitted")


async def test_message_reaches_everyone_waiting_and_nobody_else(api: Api) -> None:
    world = await api.world(patients=2)
    session_id = await api.open(world)
    inside = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await inside.until("admitted")
    waiting = await api.patient(world.tokens[1])
    answer = await api.post(world.facilitator, f"/sessions/{session_id}/message", {"text": "Starting in 5 minutes"})
    assert answer == {"delivered": 1}
    assert (await waiting.until("message"))["text"] == "Starting in 5 minutes"
    await api.post(world.facilitator, f"/sessions/{session_id}/mute", {"patient_id": world.patients[0]["id"]})
    await inside.until("muted")
    assert not [f for f in inside.seen if f["type"] == "message"]


async def test_two_tabs_hold_one_presence_and_the_newer_wins(api: Api) -> None:
    world = await api.world()
    session_id = await api.open(world)
    pid = world.patients[0]["id"]
    first = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [pid]})
    await first.until("admitted")

    second = await api.patient(world.tokens[0], expect="admitted")
    error = await first.until("error")
    assert error["code"] == "replaced"
    assert await first.closed() == 4409
    await second.send({"type": "media_state", "audio": True, "video": False})
    described = await api.get(world.facilitator, f"/sessions/{session_id}")
    assert [p["patient_id"] for p in described["participants"]] == [pid]
    kinds = [e["type"] for e in await api.events(world.facilitator, session_id) if e["type"] != "media_state"]
    assert kinds == ["waiting", "admitted", "joined"]


async def test_reconnect_within_grace_goes_straight_back_in(api: Api) -> None:
    world = await api.world()
    session_id = await api.open(world)
    pid = world.patients[0]["id"]
    patient = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [pid]})
    await patient.until("admitted")
    api.clock.advance(20)  # under the heartbeat timeout: this test client does not answer pings
    await patient.send({"type": "media_state", "audio": True, "video": True})  # heard at +20
    await _wait_for_event(api, world, session_id, "media_state")
    heard_at = api.clock.now()
    await patient.close()
    await _wait_for_event(api, world, session_id, "left")

    api.clock.advance(100)  # within the 120 s grace
    back = await api.patient(world.tokens[0], expect=None)
    first = await back.next()
    assert first == {"type": "admitted", "session_id": session_id, "ice_servers": []}
    events = await api.events(world.facilitator, session_id)
    left = [e for e in events if e["type"] == "left"][0]
    assert left["reason"] == "drop"
    assert left["at"] == _iso(heard_at)
    rejoin = [e for e in events if e["type"] == "joined"][-1]
    assert rejoin["reconnect"] is True


async def test_reconnect_after_grace_waits_again(api: Api) -> None:
    world = await api.world()
    session_id = await api.open(world)
    pid = world.patients[0]["id"]
    patient = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [pid]})
    await patient.until("admitted")
    await patient.close()
    await _wait_for_event(api, world, session_id, "left")
    api.clock.advance(api.settings.reconnect_grace_seconds + 1)
    back = await api.patient(world.tokens[0], expect=None)
    assert (await back.next())["type"] == "waiting"


async def test_silent_client_is_dropped_with_leave_time_when_last_heard(api: Api) -> None:
    world = await api.world()
    session_id = await api.open(world)
    pid = world.patients[0]["id"]
    # autoping off: this client never answers the server's pings, like a frozen phone.
    patient = await api.patient(world.tokens[0], autoping=False)
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [pid]})
    await patient.until("admitted")
    api.clock.advance(10)
    await patient.send({"type": "media_state", "audio": True, "video": True})
    await _wait_for_event(api, world, session_id, "media_state")
    last_heard = api.clock.now()
    api.clock.advance(api.settings.heartbeat_timeout_seconds + 5)
    left = await _wait_for_event(api, world, session_id, "left")
    assert left["reason"] == "drop"
    assert left["at"] == _iso(last_heard)


async def test_facilitator_who_drops_finds_the_room_as_it_was(api: Api) -> None:
    world = await api.world(patients=2)
    session_id = await api.open(world)
    host = await api.staff_socket(world.facilitator, session_id=session_id)
    inside = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await inside.until("admitted")
    await api.patient(world.tokens[1])
    await host.close()
    await inside.until("roster", lambda f: [p["id"] for p in f["participants"]] == [world.patients[0]["id"]])

    host = await api.ws(world.facilitator)
    await host.send({"type": "hello", "session_id": session_id})
    roster = await host.until("roster")
    assert {p["id"] for p in roster["participants"]} == {world.facilitator.user_id, world.patients[0]["id"]}
    waiting = await host.until("waiting_list")
    assert [w["patient_id"] for w in waiting["waiting"]] == [world.patients[1]["id"]]
    groups = await api.get(world.facilitator, "/groups")
    assert groups["groups"][0]["open_session_id"] == session_id


async def test_end_disconnects_everyone_and_cannot_happen_twice(api: Api) -> None:
    world = await api.world(patients=2)
    session_id = await api.open(world)
    host = await api.staff_socket(world.facilitator, session_id=session_id)
    inside = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await inside.until("admitted")
    waiting = await api.patient(world.tokens[1])
    api.clock.advance(20)  # under the heartbeat timeout: these test clients do not answer pings

    ended = await api.post(world.facilitator, f"/sessions/{session_id}/end")
    assert ended["state"] == "ended" and ended["ended_at"]
    for sock in (inside, waiting, host):
        await sock.until("session_ended")
        assert await sock.closed() == 1000
    again = await api.post(world.facilitator, f"/sessions/{session_id}/end", expect=409)
    assert again["error"]["code"] == "session_ended"
    late = await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"all": True}, expect=409)
    assert late["error"]["code"] == "session_ended"
    left = {e["patient_id"]: e for e in await api.events(world.facilitator, session_id) if e["type"] == "left"}
    assert left[world.patients[0]["id"]]["reason"] == "session_end"
    assert left[world.patients[1]["id"]]["from"] == "waiting"
    assert (await api.get(world.facilitator, f"/groups/{world.group['id']}"))["open_session_id"] is None
    # A new session can open, and a second open while it is open is refused.
    second = await api.open(world)
    conflict = await api.post(world.facilitator, f"/groups/{world.group['id']}/sessions", expect=409)
    assert conflict["error"] == {"code": "session_open", "message": conflict["error"]["message"],
                                 "session_id": second, "request_id": conflict["error"]["request_id"]}


async def test_patient_leave_is_recorded_with_its_reason(api: Api) -> None:
    world = await api.world()
    session_id = await api.open(world)
    patient = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await patient.until("admitted")
    api.clock.advance(20)
    await patient.send({"type": "leave"})
    assert await patient.closed() == 1000
    left = await _wait_for_event(api, world, session_id, "left")
    assert left["reason"] == "leave"
    back = await api.patient(world.tokens[0], expect=None)
    assert (await back.next())["type"] == "waiting"  # leaving on purpose is not a drop


def _iso(seconds: float) -> str:
    from server.clock import iso, to_ms

    value = iso(to_ms(seconds))
    assert value is not None
    return value


async def _wait_for_event(api: Api, world: object, session_id: str, kind: str) -> dict[str, object]:
    """Poll the event log until an event of `kind` is recorded (the server acts on its own)."""
    import asyncio

    facilitator = world.facilitator  # type: ignore[attr-defined]
    async with asyncio.timeout(5):
        while True:
            found = [e for e in await api.events(facilitator, session_id) if e["type"] == kind]
            if found:
                return found[-1]
            await asyncio.sleep(0.01)


async def test_after_a_crash_the_next_process_drops_patients_at_the_last_alive_mark(
    api: Api, aiohttp_client: object
) -> None:
    import asyncio

    from server.app import create_app
    from server.store import keys

    world, session_id = await _one_patient_admitted(api)
    api.clock.advance(30)
    alive_at = int(api.clock.now() * 1000)
    async with asyncio.timeout(5):  # the first process marks the session alive every heartbeat interval
        while int(await api.redis.hget(keys.session(session_id), "alive_at") or 0) != alive_at:
            await asyncio.sleep(0.01)

    # The first process freezes (no alive marks, no heartbeats: as if killed); ten minutes later
    # a second process takes over the same Redis.
    await _freeze_background_tasks(api)
    api.clock.advance(600)
    second = Api(await aiohttp_client(create_app(api.settings, redis=api.redis, clock=api.clock)),  # type: ignore[operator]
                 api.redis, api.clock, api.settings)
    described = await second.get(world.facilitator, f"/sessions/{session_id}")
    assert described["participants"] == []
    left = [e for e in await second.events(world.facilitator, session_id) if e["type"] == "left"]
    assert [(e["reason"], e["at"]) for e in left] == [("drop", _iso(alive_at / 1000))]


async def test_staff_websocket_traffic_keeps_the_sign_in_alive(api: Api, aiohttp_client: object) -> None:
    import asyncio

    from server.app import create_app
    from server.store import keys

    # Long clock jumps: a heartbeat timeout longer than them, so only the idle timer is tested.
    settings = api.settings.replace(heartbeat_timeout_seconds=24 * 3600)
    api = Api(await aiohttp_client(create_app(settings, redis=api.redis, clock=api.clock)),  # type: ignore[operator]
              api.redis, api.clock, settings)

    world = await api.world(patients=0)
    session_id = await api.open(world)
    host = await api.staff_socket(world.facilitator, session_id=session_id)
    idle = api.settings.staff_idle_timeout_seconds
    for _ in range(3):  # three idle periods of HTTP silence, with the console's socket open
        api.clock.advance(idle - 60)
        now = api.clock.now()
        await host.send({"type": "media_state", "audio": True, "video": True})
        async with asyncio.timeout(5):
            while True:
                sessions = await api.redis.keys(keys.staff_session("*"))
                stamps = [float(await api.redis.hget(k, "last_seen") or 0) for k in sessions]
                if any(abs(s - now) < 1e-6 for s in stamps):
                    break
                await asyncio.sleep(0.01)
    await api.get(world.facilitator, f"/sessions/{session_id}")


async def test_a_session_orphaned_by_a_crash_is_adopted_and_ends_by_itself(
    api: Api, aiohttp_client: object
) -> None:
    import asyncio

    from server.app import create_app
    from server.services import SERVICES
    from server.store import keys

    world, session_id = await _one_patient_admitted(api)
    await _freeze_background_tasks(api)  # the first process freezes, as if killed
    # A second process starts; nobody comes back, and nobody asks about the session.
    settings = api.settings.replace(auto_end_seconds=60)
    second = await aiohttp_client(create_app(settings, redis=api.redis, clock=api.clock))  # type: ignore[operator]
    async with asyncio.timeout(5):
        while world.group["id"] not in second.app[SERVICES].lobby.doors:
            await asyncio.sleep(0.01)
    api.clock.advance(1)
    await second.app[SERVICES].lobby.tend()  # the adopted room is seen empty
    api.clock.advance(61)
    await second.app[SERVICES].lobby.tend()  # and ends
    async with asyncio.timeout(5):
        while not await api.redis.exists(keys.session_finalised(session_id)):
            await asyncio.sleep(0.01)
    assert (await api.redis.hget(keys.session(session_id), "state")) == "ended"


async def _one_patient_admitted(api: Api) -> tuple[World, str]:
    world = await api.world()
    session_id = await api.open(world)
    patient = await api.patient(world.tokens[0])
    await api.post(world.facilitator, f"/sessions/{session_id}/admit", {"patient_ids": [world.patients[0]["id"]]})
    await patient.until("admitted")
    return world, session_id


async def _freeze_background_tasks(api: Api) -> None:
    """Stop this process's background tasks (alive marks, socket heartbeats, rounds, workers) and
    its bus, and let its leases lapse (as they do PORCHLIGHT_NODE_TIMEOUT_SECONDS after its last
    renewal): to Redis and the others it looks killed."""
    from server.store import keys

    svc = api.client.app[SERVICES]
    assert "porchlight socket heartbeat" in svc.background.running()
    svc.background.halt()
    lobby = svc.lobby
    assert lobby.cluster is not None
    await lobby.cluster.bus.stop()
    await api.redis.delete(*[keys.group_owner(g) for g in lobby.cluster.owned])


async def test_the_waiting_frame_says_since_when_so_a_reload_keeps_the_clock(api: Api) -> None:
    world = await api.world(patients=1)
    session_id = await api.open(world)
    checked_in = api.clock.now()
    first = await api.patient(world.tokens[0], expect=None)
    assert (await first.until("waiting"))["waiting_since"] == _iso(checked_in)
    api.clock.advance(25)
    again = await api.patient(world.tokens[0], expect=None)  # the page is reloaded
    frame = await again.until("waiting")
    assert frame["session_id"] == session_id and frame["waiting_since"] == _iso(checked_in)


async def test_a_patients_socket_is_not_compressed_and_a_staff_pages_is(api: Api) -> None:
    # Browsers offer permessage-deflate on every WebSocket. A patient's socket declines it (its
    # zlib state would cost the server ~100 KB per waiting patient); a staff page's takes it.
    world = await api.world()
    session_id = await api.open(world)
    patient = await api.patient(world.tokens[0], compress=15)
    assert patient.ws.compress == 0
    assert patient.seen[-1]["session_id"] == session_id

    host = await api.ws(world.facilitator, compress=15)
    assert host.ws.compress == 15
    await host.send({"type": "hello", "session_id": session_id})
    listed = await host.until("waiting_list", lambda f: f["waiting"])
    assert [w["patient_id"] for w in listed["waiting"]] == [world.patients[0]["id"]]
