"""Staff accounts from the admin pages (GET/POST /users, PATCH /users/{id}): admins only, audited;
bad input, a taken username or the wrong role change nothing; a deactivated account cannot sign
in, its sign-ins end at once, and it cannot be made a facilitator of another group."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.auth.staff import Role
from server.store import keys
from tests.helpers import Api

PASSWORD = "a long enough password"


async def _audit(api: Api, action: str) -> list[dict[str, Any]]:
    return [e for e in (json.loads(r) for r in await api.redis.lrange(keys.audit_log(), 0, -1))
            if e["action"] == action]


async def _users(api: Api, admin: Any) -> dict[str, dict[str, Any]]:
    return {u["username"]: u for u in (await api.get(admin, "/users"))["users"]}


async def test_an_admin_adds_a_facilitator_who_can_then_sign_in(api: Api) -> None:
    world = await api.world(patients=0)
    before = await _users(api, world.admin)
    assert set(before) == {"admin", "dana"} and all(u["active"] for u in before.values())
    added = await api.post(world.admin, "/users", {"username": "rosa", "password": PASSWORD, "role": "facilitator",
                                                   "name": "Rosa M.", "npi": "1234567893"}, expect=201)
    assert added["role"] == "facilitator" and added["name"] == "Rosa M." and added["active"] is True
    assert "password" not in added
    rosa = await api.login("rosa", PASSWORD, added["id"])
    assert (await api.get(rosa, "/me"))["user"]["id"] == added["id"]
    [entry] = await _audit(api, "user.create")
    assert entry["actor"] == world.admin.user_id and entry["details"]["user_id"] == added["id"]
    assert PASSWORD not in json.dumps(entry)


@pytest.mark.parametrize("body", [
    {"username": "rosa", "password": "short", "role": "facilitator"},
    {"username": "rosa", "password": PASSWORD, "role": "owner"},
    {"username": "rosa", "password": PASSWORD},
    {"username": "ro sa", "password": PASSWORD, "role": "facilitator"},
    {"username": "rosa", "password": PASSWORD, "role": "facilitator", "npi": "123"},
    {"username": "rosa", "password": PASSWORD, "role": "facilitator", "name": ""},
    {"username": "rosa", "password": PASSWORD, "role": "facilitator", "is_admin": True},
    [],
])
async def test_bad_input_adds_no_one(api: Api, body: Any) -> None:
    world = await api.world(patients=0)
    answer = await api.post(world.admin, "/users", body, expect=400)
    assert answer["error"]["code"] == "bad_request"
    assert set(await _users(api, world.admin)) == {"admin", "dana"}
    assert not await api.redis.exists(keys.username("rosa"))


async def test_a_taken_username_is_refused_and_the_account_unchanged(api: Api) -> None:
    world = await api.world(patients=0)
    before = await _users(api, world.admin)
    answer = await api.post(world.admin, "/users", {"username": "DANA", "password": PASSWORD, "role": "admin"},
                            expect=409)
    assert answer["error"]["code"] == "username_taken"
    assert await _users(api, world.admin) == before
    await api.login("dana", "correct horse battery")  # her password still works


async def test_only_admins_manage_staff(api: Api) -> None:
    world = await api.world(patients=0)
    body = {"username": "rosa", "password": PASSWORD, "role": "admin"}
    assert (await api.get(world.facilitator, "/users", expect=403))["error"]["code"] == "forbidden"
    assert (await api.post(world.facilitator, "/users", body, expect=403))["error"]["code"] == "forbidden"
    await api.request(world.facilitator, "PATCH", f"/api/v1/users/{world.admin.user_id}", {"active": False},
                      expect=403)
    await api.request(None, "POST", "/api/v1/users", body, expect=401)
    no_csrf = await api.request(world.admin, "POST", "/api/v1/users", body, expect=403, headers={"X-CSRF-Token": "x"})
    assert no_csrf["error"]["code"] == "csrf_failed"
    users = await _users(api, world.admin)
    assert set(users) == {"admin", "dana"} and users["admin"]["active"] is True


async def test_deactivating_ends_sign_ins_at_once_and_reactivating_restores_them(api: Api) -> None:
    world = await api.world(patients=0)
    other = await api.post(world.admin, "/groups", {"name": "Morning PHP", "program": "PHP", "facilitator_ids": []},
                           expect=201)
    dana = world.facilitator
    console = await api.staff_socket(dana, group_id=world.group["id"])  # her console, open
    changed = await api.request(world.admin, "PATCH", f"/api/v1/users/{dana.user_id}", {"active": False})
    assert changed["active"] is False and changed["name"] == "Dana W."
    # The open console is told and closed at its next heartbeat (every 10 s by default).
    assert (await console.until("error"))["code"] == "unauthorized"
    assert await console.closed() == 4401
    assert (await api.get(dana, "/me", expect=401))["error"]["code"] == "unauthorized"
    resp = await api.client.post("/api/v1/login", json={"username": "dana", "password": "correct horse battery"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_credentials"
    page = await api.client.get("/console", headers={"Cookie": f"porchlight_session={dana.cookie}"},
                                   allow_redirects=False)
    assert page.status == 302
    # Her groups still name her; she cannot be added to another.
    refused = await api.request(world.admin, "PATCH", f"/api/v1/groups/{other['id']}",
                                {"facilitator_ids": [dana.user_id]}, expect=400)
    assert refused["error"]["code"] == "unknown_user"
    assert (await api.get(world.admin, f"/groups/{other['id']}"))["facilitator_ids"] == []
    kept = await api.request(world.admin, "PATCH", f"/api/v1/groups/{world.group['id']}",
                             {"facilitator_ids": [dana.user_id], "capacity": 12})
    assert kept["facilitator_ids"] == [dana.user_id] and kept["capacity"] == 12
    [entry] = await _audit(api, "user.update")
    assert entry["details"] == {"user_id": dana.user_id, "fields": ["active"], "active": False}

    await api.request(world.admin, "PATCH", f"/api/v1/users/{dana.user_id}", {"active": True, "name": "Dana West"})
    back = await api.login("dana", "correct horse battery", dana.user_id)
    assert (await api.get(back, "/me"))["user"]["name"] == "Dana West"


async def test_an_admin_cannot_deactivate_themselves_and_bad_changes_change_nothing(api: Api) -> None:
    world = await api.world(patients=0)
    me = await api.request(world.admin, "PATCH", f"/api/v1/users/{world.admin.user_id}", {"active": False},
                           expect=403)
    assert me["error"]["code"] == "forbidden"
    for body in ({"active": "no"}, {"npi": "12"}, {"name": ""}, {"role": "admin"}, {}):
        await api.request(world.admin, "PATCH", f"/api/v1/users/{world.facilitator.user_id}", body, expect=400)
    missing = await api.request(world.admin, "PATCH", "/api/v1/users/usr_nobody", {"active": False}, expect=404)
    assert missing["error"]["code"] == "not_found"
    users = await _users(api, world.admin)
    assert users["admin"]["active"] and users["dana"]["active"] and users["dana"]["name"] == "Dana W."
    assert users["dana"]["npi"] == "1234567893"
    assert await _audit(api, "user.update") == []
    await api.get(world.admin, "/me")  # still signed in


async def test_the_command_line_and_the_pages_share_one_store(api: Api) -> None:
    from server.auth.staff import create_user

    world = await api.world(patients=0)
    await create_user(api.redis, "cli-made", PASSWORD, Role.ADMIN)
    assert "cli-made" in await _users(api, world.admin)
