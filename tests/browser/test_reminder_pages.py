"""Reminders in a real browser: the admin gives a patient an email and turns reminders on from
their row; the patient's unsubscribe link asks, then stops them. axe-core on both pages."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from server.reminders.unsubscribe import UnsubscribeLinks
from tests.browser.conftest import Demo
from tests.browser.support import check_accessibility, screenshot, sign_in


def test_the_admin_turns_reminders_on_and_the_patient_turns_them_off(demo: Demo, new_page: Any) -> None:
    from playwright.sync_api import expect

    admin = new_page(1280, 800)
    sign_in(admin, demo, "/admin", "admin", demo.admin_password)
    admin.get_by_role("textbox", name="Email of Alex R.").fill("alex@example.org")
    admin.get_by_role("checkbox", name="Reminders for Alex R.").check()
    admin.get_by_role("button", name="Save reminders of Alex R.").click()
    expect(admin.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    expect(admin.get_by_role("checkbox", name="Reminders for Alex R.")).to_be_checked()
    expect(admin.get_by_role("textbox", name="Email of Alex R.")).to_have_value("alex@example.org")
    check_accessibility(admin, "admin clinic with reminders")
    screenshot(admin, "admin-reminders-1280", full_page=True)

    # The link a reminder carries (signed with the demo's key, as the server signs it).
    patients = json.loads(admin.evaluate("async () => JSON.stringify(await (await fetch('/api/v1/patients')).json())"))
    alex = next(p for p in patients["patients"] if p["display_name"] == "Alex R.")
    key = (demo.output.parent / "secret_key").read_text().strip()
    link = UnsubscribeLinks(key, demo.url).url(alex["id"])

    patient = new_page(360, 740)
    patient.goto(link)
    expect(patient.get_by_role("heading", name="Stop meeting reminders?")).to_be_visible()
    check_accessibility(patient, "the unsubscribe page")
    screenshot(patient, "unsubscribe-360")
    patient.get_by_role("button", name="Stop reminders").click()
    expect(patient.get_by_role("status")).to_contain_text("You will not get meeting reminders any more")
    admin.reload()
    expect(admin.get_by_role("checkbox", name="Reminders for Alex R.")).not_to_be_checked()
    with urllib.request.urlopen(demo.url + "/livez") as answer:  # the server is still well
        assert answer.status == 200
