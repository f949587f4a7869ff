"""A clinic-wide brand (GET/PUT /clinic/brand, admins, audited) that every group shows unless it
sets its own fields: on the patient's page and in the waiting room's `waiting` frame, at once
for a waiting room already open. Bad input and the wrong role change nothing."""

from __future__ import annotations

import json

import pytest

from server.clinic.groups import DEFAULT_BRAND
from server.store import keys
from tests.helpers import Api

CLINIC = {"name": "Riverside Behavioral Health", "primary_color": "#123456", "support_phone": "555-0100"}


async def test_groups_show_the_clinic_brand_unless_they_set_their_own_fields(api: Api) -> None:
    world = await api.world(patients=2)
    assert await api.get(world.admin, "/clinic/brand") == {"brand": DEFAULT_BRAND, "set": []}
    first = await api.patient(world.tokens[0])  # the waiting room is open before the change

    answer = await api.request(world.admin, "PUT", "/api/v1/clinic/brand", CLINIC)
    assert answer == {"brand": {**DEFAULT_BRAND, **CLINIC}, "set": sorted(CLINIC)}
    later = await api.patient(world.tokens[1], expect=None)
    waiting = await later.until("waiting")
    assert waiting["brand"]["name"] == CLINIC["name"] and waiting["brand"]["primary_color"] == "#123456"
    page = await api.request(None, "GET", f"/j/{world.tokens[0]}")
    assert CLINIC["name"] in page and "555-0100" in page
    await first.close()

    # The group's own fields win; the others still come from the clinic.
    await api.request(world.admin, "PATCH", f"/api/v1/groups/{world.group['id']}",
                      {"brand": {"name": "Evening DBT at Riverside"}})
    page = await api.request(None, "GET", f"/j/{world.tokens[0]}")
    assert "Evening DBT at Riverside" in page and "555-0100" in page
    # A field given as null is the clinic's again; null for the whole brand clears every field.
    partly = await api.request(world.admin, "PATCH", f"/api/v1/groups/{world.group['id']}",
                               {"brand": {"name": None, "support_phone": "555-0199"}})
    assert partly["brand"] == {"support_phone": "555-0199"}
    page = await api.request(None, "GET", f"/j/{world.tokens[0]}")
    assert CLINIC["name"] in page and "555-0199" in page and "555-0100" not in page
    # null clears the group's own brand: the clinic's applies again.
    cleared = await api.request(world.admin, "PATCH", f"/api/v1/groups/{world.group['id']}", {"brand": None})
    assert cleared["brand"] == {} and "clinic_brand" not in cleared
    page = await api.request(None, "GET", f"/j/{world.tokens[0]}")
    assert CLINIC["name"] in page and "Evening DBT at Riverside" not in page

    # The clinic's brand is read with a group, never stored in it or answered as part of it.
    stored = json.loads(await api.redis.get(keys.group(world.group["id"])))
    assert "clinic_brand" not in stored
    assert all("clinic_brand" not in g for g in (await api.get(world.admin, "/groups"))["groups"])
    entries = [json.loads(r) for r in await api.redis.lrange(keys.audit_log(), 0, -1)]
    assert [e["details"] for e in entries if e["action"] == "clinic.brand"] == [{"fields": sorted(CLINIC)}]


@pytest.mark.parametrize("body", [
    {"primary_color": "blue"}, {"logo_url": "http://insecure.example/logo.png"}, {"slogan": "x"},
    {"name": "x" * 101}, ["name"], {"welcome_text": 5},
])
async def test_bad_brands_are_refused_and_change_nothing(api: Api, body: object) -> None:
    world = await api.world(patients=0)
    await api.request(world.admin, "PUT", "/api/v1/clinic/brand", CLINIC)
    answer = await api.request(world.admin, "PUT", "/api/v1/clinic/brand", body, expect=400)
    assert answer["error"]["code"] == "bad_request"
    assert (await api.get(world.admin, "/clinic/brand"))["brand"] == {**DEFAULT_BRAND, **CLINIC}


async def test_only_admins_set_the_clinic_brand(api: Api) -> None:
    world = await api.world(patients=0)
    assert (await api.request(world.facilitator, "PUT", "/api/v1/clinic/brand", CLINIC, expect=403))["error"][
        "code"] == "forbidden"
    await api.get(world.facilitator, "/clinic/brand", expect=403)
    await api.request(None, "PUT", "/api/v1/clinic/brand", CLINIC, expect=401)
    await api.request(world.admin, "PUT", "/api/v1/clinic/brand", CLINIC, expect=403, headers={"X-CSRF-Token": "no"})
    assert not await api.redis.exists(keys.clinic_brand())
