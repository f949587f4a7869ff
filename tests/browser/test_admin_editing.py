"""The clinic edited from the pages, in real Chromium: staff added and deactivated, a group's
details (capacity, a meeting time), the brand for all groups and a group that takes it, and a
facilitator's own attendance from the console. axe-core on every page and state."""

from __future__ import annotations

import re
from typing import Any

from tests.browser.conftest import Demo
from tests.browser.support import check_accessibility, screenshot, sign_in


def test_an_admin_edits_staff_a_group_and_the_brand(demo: Demo, new_page: Any) -> None:
    from playwright.sync_api import expect

    admin = new_page()
    sign_in(admin, demo, "/admin", "admin", demo.admin_password)
    admin.on("dialog", lambda dialog: dialog.accept())

    # -- staff: add a facilitator, who can sign in; then deactivate them, which signs them out ----
    form = admin.locator("#new-staff")
    form.get_by_role("textbox", name="Name", exact=True).fill("Rosa M.")
    form.get_by_role("textbox", name="Username").fill("rosa")
    form.get_by_role("textbox", name="NPI").fill("1234567893")
    form.get_by_label("First password").fill("a long first password")
    form.get_by_role("button", name="Add staff member").click()
    expect(admin.get_by_role("status").filter(has_text="Rosa M. can now sign in as rosa.")).to_be_visible()
    rosa_row = admin.locator("tr[data-user-id]").filter(has_text="rosa")
    expect(rosa_row).to_contain_text("active")
    check_accessibility(admin, "admin clinic with staff")
    screenshot(admin, "admin-staff-1280", full_page=True)

    rosa = new_page()
    sign_in(rosa, demo, "/console", "rosa", "a long first password")
    expect(rosa.get_by_role("heading", name="Your groups")).to_be_visible()
    rosa_row.get_by_role("button", name="Deactivate Rosa M.").click()
    expect(admin.get_by_role("status").filter(has_text="Rosa M. is deactivated and signed out.")).to_be_visible()
    expect(admin.locator("tr[data-user-id]").filter(has_text="rosa")).to_contain_text("deactivated")
    expect(admin.get_by_role("button", name="Reactivate Rosa M.")).to_be_visible()
    check_accessibility(admin, "admin clinic with a deactivated account")
    rosa.reload()
    expect(rosa).to_have_url(re.compile(r"/login\?"))

    # -- a group's details: capacity and one more meeting time ------------------------------------
    admin.get_by_role("link", name="Evening DBT Skills").click()
    details = admin.locator("#group-form")
    expect(details.get_by_role("combobox", name="Day of meeting 3")).to_have_value("3")
    expect(details.get_by_text("Rosa M.")).to_have_count(0)  # deactivated: not offered
    details.get_by_role("spinbutton", name="Capacity").fill("10")
    details.get_by_role("button", name="Add a meeting time").click()
    expect(details.get_by_role("combobox", name="Day of meeting 4")).to_be_focused()
    details.get_by_role("combobox", name="Day of meeting 4").select_option("Saturday")
    details.get_by_label("Start of meeting 4").fill("10:00")
    details.get_by_role("spinbutton", name="Minutes of meeting 4").fill("90")
    check_accessibility(admin, "admin group details being edited")
    details.get_by_role("button", name="Save group details").click()
    expect(admin.get_by_role("status").filter(has_text="Group details saved.")).to_be_visible()
    head = admin.locator(".page-head")
    expect(head).to_contain_text("capacity 10")
    expect(head).to_contain_text("Sat")
    # A bad value is refused with the server's words, and nothing changes.
    details.get_by_role("textbox", name="Timezone").fill("Mars/Olympus")
    details.get_by_role("spinbutton", name="Capacity").fill("11")
    details.get_by_role("button", name="Save group details").click()
    expect(admin.get_by_role("status")).to_contain_text("timezone")
    admin.reload()
    expect(admin.locator("#group-form").get_by_role("spinbutton", name="Capacity")).to_have_value("10")
    expect(admin.locator("#group-form").get_by_role("textbox", name="Timezone")).to_have_value("America/Chicago")
    screenshot(admin, "admin-group-details-1280", full_page=True)

    # -- the brand for all groups, and a group that gives up its own -------------------------------
    admin.get_by_role("link", name="brand for all groups").first.click()
    expect(admin.get_by_role("heading", name="Brand for all groups")).to_be_visible()
    admin.get_by_role("textbox", name="Clinic name").fill("Riverside Behavioral Health")
    admin.get_by_role("textbox", name="Main colour", exact=True).fill("#6b4f8f")
    expect(admin.locator("#preview-name")).to_have_text("Riverside Behavioral Health")
    expect(admin.locator("#brand-preview .brand-bar")).to_have_css("background-color", "rgb(107, 79, 143)")
    admin.get_by_role("button", name="Save brand").click()
    expect(admin.get_by_role("status").filter(has_text="Brand saved for every group")).to_be_visible()
    check_accessibility(admin, "the brand for all groups")
    screenshot(admin, "admin-clinic-brand-1280", full_page=True)

    admin.go_back()
    admin.reload()
    admin.get_by_role("button", name="Use the brand for all groups in every field").click()
    expect(admin.get_by_role("status").filter(has_text="now shows the brand for all groups")).to_be_visible()
    expect(admin.get_by_role("textbox", name="Clinic name")).to_have_value("")
    expect(admin.get_by_role("textbox", name="Clinic name")).to_have_attribute("placeholder",
                                                                                "Riverside Behavioral Health")
    expect(admin.locator("#preview-name")).to_have_text("Riverside Behavioral Health")
    check_accessibility(admin, "a group showing the brand for all groups")
    patient = new_page(360, 740)
    patient.goto(demo.links[0])
    expect(patient.get_by_text("Riverside Behavioral Health").first).to_be_visible()


def test_a_facilitator_reads_their_groups_attendance(demo: Demo, new_page: Any) -> None:
    from playwright.sync_api import expect

    page = new_page()
    sign_in(page, demo, "/console", "facilitator", demo.facilitator_password)
    page.get_by_role("link", name="Attendance of Evening DBT Skills").click()
    expect(page.get_by_role("heading", name="Attendance", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Attendance", exact=True)).to_have_attribute("aria-current", "page")
    expect(page.locator("#attendance-table tbody tr").first).to_be_visible()  # the demo's past meetings
    expect(page.get_by_role("link", name="Download CSV")).to_have_count(0)
    expect(page.get_by_role("combobox", name="Group")).to_have_value(demo.group_id)
    check_accessibility(page, "a facilitator's attendance")
    screenshot(page, "console-attendance-1280", full_page=True)
    phone = new_page(360, 740)
    sign_in(phone, demo, "/console/attendance", "facilitator", demo.facilitator_password)
    check_accessibility(phone, "a facilitator's attendance on a phone")
    screenshot(phone, "console-attendance-360", full_page=True)
