"""The admin pages that edit the clinic render what the API holds: a group's details form,
its facilitator choices (deactivated accounts only where they already are), the brand editors
of a group (its own fields, the clinic's as placeholders) and of the clinic, and the staff list."""

from __future__ import annotations

from tests.helpers import Api


async def test_the_group_page_holds_its_details_and_only_usable_facilitators(api: Api) -> None:
    world = await api.world(patients=0, capacity=12, schedule=[{"weekday": 0, "start": "18:00", "minutes": 180}],
                            billing={"code": "H0015", "min_billable_minutes": 30}, brand={"name": "DBT Evenings"})
    rosa = await api.post(world.admin, "/users", {"username": "rosa", "password": "a long password",
                                                  "role": "facilitator", "name": "Rosa M."}, expect=201)
    gone = await api.post(world.admin, "/users", {"username": "old", "password": "a long password",
                                                  "role": "facilitator", "name": "Old Account"}, expect=201)
    await api.request(world.admin, "PATCH", f"/api/v1/users/{gone['id']}", {"active": False})
    await api.request(world.admin, "PUT", "/api/v1/clinic/brand", {"support_phone": "555-0100"})
    page = await api.request(world.admin, "GET", f"/admin/groups/{world.group['id']}")
    assert 'id="group-form"' in page and 'value="12"' in page and 'value="H0015"' in page
    assert 'aria-label="Day of meeting 1"' in page and 'value="18:00"' in page
    assert f'value="{world.facilitator.user_id}" checked' in page and f'value="{rosa["id"]}" >' in page
    assert "Old Account" not in page  # deactivated, and not one of this group's
    assert 'value="DBT Evenings"' in page and 'placeholder="555-0100"' in page  # own field; the clinic's phone
    assert 'data-target="group"' in page and 'id="brand-inherit"' in page

    clinic = await api.request(world.admin, "GET", "/admin/brand")
    assert 'data-target="clinic"' in clinic and 'value="555-0100"' in clinic
    home = await api.request(world.admin, "GET", "/admin")
    assert "Rosa M." in home and "deactivated" in home and 'id="new-staff"' in home
    assert home.count('name="facilitator_ids"') == 2  # the new-group form offers active facilitators only

    for path in ("/admin/brand", f"/admin/groups/{world.group['id']}"):
        resp = await api.client.get(path, headers={"Cookie": f"porchlight_session={world.facilitator.cookie}"},
                                    allow_redirects=False)
        assert resp.status == 403
