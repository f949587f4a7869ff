"""Staff sign-in, sessions, CSRF, rate limits and roles."""

from __future__ import annotations

from server.auth.sessions import COOKIE_NAME
from server.auth.staff import Role
from tests.helpers import Api, Staff


async def test_login_sets_a_strict_httponly_cookie_and_returns_the_csrf_token(api: Api) -> None:
    from server.auth.staff import create_user

    user = await create_user(api.redis, "dana", "correct horse battery", Role.FACILITATOR, "Dana W.")
    resp = await api.client.post("/api/v1/login", json={"username": "dana", "password": "correct horse battery"})
    assert resp.status == 200
    body = await resp.json()
    assert body["user"]["id"] == user.id and body["user"]["role"] == "facilitator" and body["user"]["name"] == "Dana W."
    assert len(body["csrf_token"]) >= 32
    cookie = resp.cookies[COOKIE_NAME]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert not cookie["secure"]  # public URL is http in tests


async def test_wrong_password_and_unknown_user_get_401_and_are_audited(api: Api) -> None:
    await api.staff("dana", Role.FACILITATOR)
    for username in ("dana", "nobody"):
        resp = await api.client.post("/api/v1/login", json={"username": username, "password": "wrong password"})
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "invalid_credentials"
    actions = [e["action"] for e in await _audit(api)]
    assert actions.count("login.failure") == 2 and actions.count("login.success") == 1


async def test_failed_logins_are_rate_limited_per_username(api: Api) -> None:
    await api.staff("dana", Role.FACILITATOR)
    for _ in range(api.settings.login_max_failures_per_user):
        resp = await api.client.post("/api/v1/login", json={"username": "dana", "password": "wrong password"})
        assert resp.status == 401
    resp = await api.client.post("/api/v1/login", json={"username": "dana", "password": "correct horse battery"})
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "rate_limited"
    # Another username from the same IP is not locked out by one user's failures.
    await api.staff("lee", Role.FACILITATOR)


async def test_failed_logins_are_rate_limited_per_ip(api: Api) -> None:
    await api.staff("dana", Role.FACILITATOR)
    for i in range(api.settings.login_max_failures_per_ip):
        await api.client.post("/api/v1/login", json={"username": f"guess{i}", "password": "wrong password"})
    resp = await api.client.post("/api/v1/login", json={"username": "dana", "password": "correct horse battery"})
    assert resp.status == 429


async def test_logout_revokes_the_session_at_once(api: Api) -> None:
    staff = await api.staff("admin", Role.ADMIN)
    await api.get(staff, "/groups")
    await api.post(staff, "/logout")
    assert (await api.get(staff, "/groups", expect=401))["error"]["code"] == "unauthorized"


async def test_idle_session_expires_and_activity_keeps_it_alive(api: Api) -> None:
    staff = await api.staff("admin", Role.ADMIN)
    idle = api.settings.staff_idle_timeout_seconds
    api.clock.advance(idle - 10)
    await api.get(staff, "/groups")  # activity resets the idle timer
    api.clock.advance(idle - 10)
    await api.get(staff, "/groups")
    api.clock.advance(idle + 1)
    await api.get(staff, "/groups", expect=401)


async def test_forged_cookie_is_unauthorized(api: Api) -> None:
    staff = await api.staff("admin", Role.ADMIN)
    forged = Staff(staff.user_id, staff.cookie[:-2] + "xx", staff.csrf, "admin")
    await api.get(forged, "/groups", expect=401)
    await api.get(None, "/groups", expect=401)


async def test_state_changes_need_the_csrf_token_and_a_matching_origin(api: Api) -> None:
    staff = await api.staff("admin", Role.ADMIN)
    body = {"display_name": "Pat"}
    missing = await api.request(staff, "POST", "/api/v1/patients", body, expect=403, headers={"X-CSRF-Token": ""})
    assert missing["error"]["code"] == "csrf_failed"
    wrong = await api.request(staff, "POST", "/api/v1/patients", body, expect=403, headers={"X-CSRF-Token": "nope"})
    assert wrong["error"]["code"] == "csrf_failed"
    foreign = await api.request(staff, "POST", "/api/v1/patients", body, expect=403,
                                headers={"Origin": "https://evil.example"})
    assert foreign["error"]["code"] == "csrf_failed"
    await api.request(staff, "POST", "/api/v1/patients", body, expect=201, headers={"Origin": "http://porchlight.test"})
    assert len((await api.get(staff, "/patients"))["patients"]) == 1
    # Authentication comes first: no session is 401 even without a token.
    await api.request(None, "POST", "/api/v1/patients", body, expect=401)


async def test_facilitators_act_only_on_their_groups(api: Api) -> None:
    world = await api.world(patients=1)
    other = await api.staff("lee", Role.FACILITATOR)
    assert (await api.get(other, "/groups"))["groups"] == []
    await api.get(other, f"/groups/{world.group['id']}", expect=403)
    denied = await api.post(other, f"/groups/{world.group['id']}/sessions", expect=403)
    assert denied["error"]["code"] == "forbidden"
    session_id = await api.open(world)
    await api.get(other, f"/sessions/{session_id}", expect=403)
    await api.post(other, f"/sessions/{session_id}/admit", {"all": True}, expect=403)
    await api.post(other, f"/sessions/{session_id}/end", expect=403)
    # The group's own facilitator, and any admin, may.
    await api.get(world.facilitator, f"/sessions/{session_id}")
    await api.get(world.admin, f"/sessions/{session_id}")


async def test_admin_only_endpoints_refuse_facilitators(api: Api) -> None:
    world = await api.world(patients=1)
    f = world.facilitator
    await api.post(f, "/groups", {"name": "X", "program": "IOP"}, expect=403)
    await api.get(f, "/patients", expect=403)
    await api.post(f, "/patients", {"display_name": "X"}, expect=403)
    await api.get(f, f"/groups/{world.group['id']}/enrollments", expect=403)
    await api.post(f, f"/enrollments/{world.patients[0]['enrollment_id']}/rotate-link", expect=403)
    await api.request(f, "PATCH", f"/api/v1/groups/{world.group['id']}", {"name": "Y"}, expect=403)


async def test_staff_websocket_needs_a_session_and_rights_to_the_group(api: Api) -> None:
    world = await api.world(patients=1)
    anonymous = await api.ws()
    await anonymous.send({"type": "hello", "group_id": world.group["id"]})
    assert (await anonymous.until("error"))["code"] == "unauthorized"
    assert await anonymous.closed() == 4401
    other = await api.staff("lee", Role.FACILITATOR)
    sock = await api.ws(other)
    await sock.send({"type": "hello", "group_id": world.group["id"]})
    assert (await sock.until("error"))["code"] == "forbidden"
    assert await sock.closed() == 4403


async def test_staff_websocket_closes_when_the_sign_in_is_revoked(api: Api) -> None:
    world = await api.world(patients=1)
    watcher = await api.staff_socket(world.facilitator, group_id=world.group["id"])
    await api.post(world.facilitator, "/logout")
    assert (await watcher.until("error"))["code"] == "unauthorized"
    assert await watcher.closed() == 4401


async def _audit(api: Api) -> list[dict[str, object]]:
    from server.audit import AuditLog

    return await AuditLog(api.redis, api.clock).entries()


async def test_a_password_with_a_tab_in_it_signs_in(api: Api) -> None:
    """Passwords are only hashed, never shown: any character may be in one (set by `user add`)."""
    from server.auth.staff import Role

    await api.staff("tabby", Role.ADMIN, password="tab\there and more")
    resp = await api.client.post("/api/v1/login", json={"username": "tabby", "password": "tab\there and more"})
    assert resp.status == 200
