"""The staff idle sign-out counts what a person does, not what a browser does by itself."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from server.app import create_app
from server.auth.sessions import COOKIE_NAME
from tests.helpers import Api, World


async def _watching_console(api: Api, aiohttp_client: Any) -> tuple[Api, World, aiohttp.ClientWebSocketResponse]:
    """A facilitator's console watching their group's door, answering pings by hand (as a test
    must, to step the clock between them)."""
    # Clock steps longer than the heartbeat timeout would drop the socket; only the idle timer is tested.
    settings = api.settings.replace(heartbeat_timeout_seconds=24 * 3600)
    api = Api(await aiohttp_client(create_app(settings, redis=api.redis, clock=api.clock)),
              api.redis, api.clock, settings)
    world = await api.world(patients=0)
    ws = await api.client.ws_connect("/api/v1/ws", headers={"Cookie": f"{COOKIE_NAME}={world.facilitator.cookie}"},
                                     autoping=False)
    await ws.send_str(json.dumps({"type": "hello", "group_id": world.group["id"]}))
    return api, world, ws


async def test_a_console_that_only_answers_pings_is_signed_out_when_idle(api: Api, aiohttp_client: Any) -> None:
    api, world, ws = await _watching_console(api, aiohttp_client)
    idle = api.settings.staff_idle_timeout_seconds
    # A forgotten tab: the browser answers every ping, the person does nothing. Each step, the
    # server's next ping is answered, as browsers do.
    closed: int | None = None
    for _ in range(int(idle // 60) + 3):
        api.clock.advance(60)
        msg = await ws.receive(timeout=5)
        while msg.type is aiohttp.WSMsgType.TEXT:
            if json.loads(msg.data).get("code") == "unauthorized":
                break
            msg = await ws.receive(timeout=5)
        if msg.type is aiohttp.WSMsgType.PING:
            await ws.pong(msg.data)
            continue
        closed = (await ws.receive(timeout=5)).data  # after `unauthorized`, the close
        break
    assert closed == 4401
    await api.get(world.facilitator, "/me", expect=401)


async def test_a_console_whose_user_is_active_stays_signed_in(api: Api, aiohttp_client: Any) -> None:
    api, world, ws = await _watching_console(api, aiohttp_client)
    idle = api.settings.staff_idle_timeout_seconds
    for _ in range(int(3 * idle // 60)):  # three idle periods, with a click every minute
        api.clock.advance(60)
        await ws.send_str(json.dumps({"type": "activity"}))
        msg = await ws.receive(timeout=5)
        while msg.type is not aiohttp.WSMsgType.PING:
            assert msg.type is aiohttp.WSMsgType.TEXT and json.loads(msg.data)["type"] == "waiting_list", msg
            msg = await ws.receive(timeout=5)
        await ws.pong(msg.data)
    await api.get(world.facilitator, "/me")
    await ws.close()


async def test_a_facilitator_removed_from_a_group_is_cut_off_at_once(api: Api) -> None:
    from server.auth.staff import Role

    world = await api.world(patients=1)
    other = await api.staff("sam", Role.FACILITATOR, name="Sam R.")
    watching = await api.staff_socket(world.facilitator, group_id=world.group["id"])
    admin_watching = await api.staff_socket(world.admin, group_id=world.group["id"])
    await api.request(world.admin, "PATCH", f"/api/v1/groups/{world.group['id']}",
                      {"facilitator_ids": [other.user_id]})
    error = await watching.until("error")
    assert error["code"] == "forbidden"
    assert await watching.closed() == 4403
    # The admin's console carries on and sees the next arrival; the removed facilitator's did not.
    await api.patient(world.tokens[0], expect=None)
    listed = await admin_watching.until("waiting_list", lambda f: len(f["waiting"]) == 1)
    assert listed["waiting"][0]["display_name"] == "Patient 0"
    assert not [f for f in watching.seen if f["type"] == "waiting_list" and f["waiting"]]
    await admin_watching.close()
