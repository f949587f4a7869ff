"""The web experience in a real browser: the patient's door, the console, admin attendance."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.browser.conftest import Demo
from tests.browser.support import check_accessibility, screenshot, sign_in

REMOTE_VIDEO = """() => [...document.querySelectorAll('.tile:not(.is-self) video')]
    .some(v => v.srcObject && v.videoWidth > 0)"""
# A remote video whose track is live and receiving (a track with nothing arriving is muted).
REMOTE_VIDEO_LIVE = """() => [...document.querySelectorAll('.tile:not(.is-self) video')]
    .some(v => v.srcObject && v.videoWidth > 0
               && v.srcObject.getVideoTracks().some(t => t.readyState === 'live' && !t.muted))"""


def test_a_bad_link_gets_the_friendly_page(demo: Demo, new_page: Any) -> None:
    from playwright.sync_api import expect

    page = new_page(360, 740)
    response = page.goto(demo.url + "/j/this-is-not-a-link")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="This link is not working")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("replaced by a newer link")
    assert "token" not in page.content().lower()
    check_accessibility(page, "the bad-link page")
    screenshot(page, "bad-link-360")


def test_sign_in_says_what_went_wrong_and_keeps_roles_apart(demo: Demo, new_page: Any) -> None:
    from playwright.sync_api import expect

    page = new_page()
    page.goto(demo.url + "/admin")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fadmin|/login\?next=/admin"))
    check_accessibility(page, "the sign-in page")
    page.get_by_role("textbox", name="Username").fill("facilitator")
    page.get_by_role("textbox", name="Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("do not match")
    expect(page.get_by_role("textbox", name="Password")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "login-error")
    page.get_by_role("textbox", name="Password").fill(demo.facilitator_password)
    page.get_by_role("button", name="Sign in").click()
    # The facilitator asked for /admin: they are signed in, and told plainly it is not theirs.
    expect(page.get_by_role("heading", name="This page is not available to you")).to_be_visible()
    page.goto(demo.url + "/login")
    expect(page).to_have_url(re.compile(r"/console$"))


def test_patient_and_facilitator_run_a_group_then_the_admin_pulls_the_minutes(demo: Demo, new_page: Any) -> None:
    """The journey: check in, sign in, start, admit, see each other, send back, leave, end, report."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    media_problems: list[str] = []

    # -- the patient opens their link on a phone: brand, device check, check-in ------------------
    patient = new_page(360, 740)
    patient.goto(demo.links[0])
    expect(patient.get_by_role("heading", name="Hello, Alex R.")).to_be_visible()
    expect(patient.get_by_text("Lakeside Behavioral Health").first).to_be_visible()
    expect(patient.get_by_role("radiogroup", name="Where are you joining from?")).to_be_visible()
    patient.wait_for_function("() => document.getElementById('preview').videoWidth > 0")
    patient.wait_for_function("() => Number(document.getElementById('mic-meter').getAttribute('aria-valuenow')) > 0")
    patient_id = patient.locator("#door").get_attribute("data-participant-id")
    check_accessibility(patient, "the patient's door")
    expect(patient.locator(".consent")).to_contain_text("The group will see you as Alex R.")
    expect(patient.locator(".consent")).not_to_contain_text("Alex R..")
    expect(patient.locator(".door-footer")).to_contain_text("Group times: Mon, Wed, Thu 6:00–9:00 PM (Central Time).")
    screenshot(patient, "patient-door-360", full_page=True)
    patient.get_by_role("radio", name="Somewhere else").check()
    patient.get_by_role("radio", name="Home").check()
    patient.get_by_role("button", name="Check in").click()
    status = patient.locator("#status")
    expect(status).to_contain_text("has not started yet")
    expect(patient.get_by_role("heading", name="You're checked in")).to_be_visible()

    # -- the facilitator signs in and sees them waiting before the session opens -----------------
    staff = new_page(1280, 800)
    sign_in(staff, demo, "/console", "facilitator", demo.facilitator_password)
    card = staff.locator(".group-card").filter(has_text="Evening DBT Skills")
    expect(card).to_contain_text("1 person is waiting: Alex R.")
    expect(staff).to_have_title(re.compile(r"^\(1\) Waiting — Porchlight$"))
    check_accessibility(staff, "the console")
    screenshot(staff, "console-groups-1280")

    # -- start: one click opens the session and joins it with camera and microphone -------------
    card.get_by_role("button", name="Start session").click()
    waiting_room = staff.get_by_role("list", name="Waiting room")
    alex_waiting = waiting_room.get_by_role("listitem").filter(has_text="Alex R.")
    expect(alex_waiting).to_be_visible()
    expect(alex_waiting).to_contain_text(re.compile(r"just arrived|waiting \d+ min"))
    expect(status).to_contain_text("You are in the waiting room")
    staff.get_by_role("textbox", name="Message everyone waiting").fill("Starting in a minute, thank you for waiting.")
    staff.get_by_role("button", name="Send message").click()
    expect(patient.locator("#messages")).to_contain_text("Starting in a minute")
    patient.wait_for_timeout(1100)  # let the waited-for clock tick once for the screenshot
    screenshot(patient, "patient-waiting-room-360", full_page=True)
    check_accessibility(patient, "the waiting room")
    check_accessibility(staff, "the console room with someone waiting")
    screenshot(staff, "console-waiting-1280")

    # -- admit: both are in, and (with the media plane) see each other ---------------------------
    alex_waiting.get_by_role("button", name="Admit").click()
    expect(patient.get_by_role("button", name="Leave", exact=True)).to_be_visible()
    participants = staff.get_by_role("list", name="Participants")
    expect(participants.get_by_role("listitem").filter(has_text="Alex R.")).to_be_visible()
    expect(patient.locator(".tile").filter(has_text="Dana Whitfield")).to_be_visible()
    for who, page in (("patient", patient), ("facilitator", staff)):
        try:
            page.wait_for_function(REMOTE_VIDEO, timeout=25_000)
        except PlaywrightTimeout:
            media_problems.append(f"the {who} never saw the other's video (remote <video> videoWidth stayed 0)")
    screenshot(patient, "session-grid-360")
    patient.set_viewport_size({"width": 1280, "height": 800})
    screenshot(patient, "session-grid-1280")
    screenshot(staff, "console-session-1280")
    check_accessibility(patient, "the session")
    check_accessibility(staff, "the console in session")

    # -- their own controls, and the facilitator muting them ------------------------------------
    patient.get_by_role("button", name="Mute", exact=True).click()
    patient.get_by_role("button", name="Unmute", exact=True).click()
    patient.get_by_role("button", name="Stop video").click()
    patient.get_by_role("button", name="Start video").click()
    participants.get_by_role("listitem").filter(has_text="Alex R.").get_by_role("button", name="Mute").click()
    expect(patient.get_by_role("button", name="Unmute", exact=True)).to_be_visible()
    expect(status).to_contain_text("muted your microphone")
    patient.get_by_role("button", name="Unmute", exact=True).click()

    # -- the facilitator's page reloads (their connection drops): back in the same room ----------
    staff.reload()
    expect(staff.get_by_role("list", name="Participants").get_by_role("listitem").filter(has_text="Alex R.")) \
        .to_be_visible()

    # -- send back for a private word, then admit again ------------------------------------------
    participants.get_by_role("listitem").filter(has_text="Alex R.").get_by_role("button", name="Send back").click()
    expect(status).to_contain_text("moved you back to the waiting room")
    expect(patient.get_by_role("button", name="Leave", exact=True)).to_be_hidden()
    waiting_room.get_by_role("listitem").filter(has_text="Alex R.").get_by_role("button", name="Admit").click()
    expect(patient.get_by_role("button", name="Leave", exact=True)).to_be_visible()
    for who, page in (("patient", patient), ("facilitator", staff)):  # live again, both ways
        try:
            page.wait_for_function(REMOTE_VIDEO_LIVE, timeout=25_000)
        except PlaywrightTimeout:
            media_problems.append(f"after re-admission the {who} did not see the other's live video")

    # -- the patient leaves; the facilitator ends the session -------------------------------------
    # Leaving asks first: coming back needs a new admission.
    patient.get_by_role("button", name="Leave", exact=True).click()
    leave_dialog = patient.get_by_role("dialog", name="Leave the session?")
    expect(leave_dialog).to_contain_text("check in again and wait for your facilitator")
    check_accessibility(patient, "the leave confirmation")
    leave_dialog.get_by_role("button", name="Stay").click()
    expect(leave_dialog).to_be_hidden()
    patient.get_by_role("button", name="Leave", exact=True).click()
    leave_dialog.get_by_role("button", name="Leave session").click()
    expect(patient.get_by_role("heading", name="You left the session")).to_be_visible()
    expect(participants.get_by_role("listitem")).to_have_count(0)
    staff.get_by_role("button", name="End session").click()
    dialog = staff.get_by_role("dialog", name="End the session for everyone?")
    dialog.get_by_role("button", name="End session").click()
    expect(staff.locator(".group-card").filter(has_text="Evening DBT Skills")
           .get_by_role("button", name="Start session")).to_be_visible()
    expect(staff.locator("#flash")).to_contain_text("Session ended. Attendance has been recorded.")

    # -- the admin filters attendance and downloads the CSV -------------------------------------
    admin = new_page(1280, 800)
    sign_in(admin, demo, "/admin/attendance", "admin", demo.admin_password)
    admin.get_by_role("combobox", name="Group").select_option(label="Evening DBT Skills")
    admin.get_by_role("button", name="Show").click()
    # The demo comes with three weeks of past meetings: the whole group, then one patient today.
    expect(admin.get_by_role("img", name="Weekly hours per patient")).to_be_visible()
    expect(admin.locator("#attendance-table tbody tr").filter(has_text="absent")).not_to_have_count(0)
    # The card, the list and the chart agree on who is at risk now (each patient's latest week).
    flagged = int(admin.locator(".summary-tiles .card").filter(has_text="flagged at risk").locator(".big").inner_text())
    listed = admin.get_by_role("region", name="Dropout risk").locator(".risk-list").first.locator("li").count()
    assert flagged >= 1 and admin.locator(".chart text.risk").count() == flagged == listed
    check_accessibility(admin, "admin attendance")
    screenshot(admin, "admin-attendance-1280", full_page=True)
    today = datetime.now(ZoneInfo("America/Chicago")).date().isoformat()  # the demo group's timezone
    admin.get_by_role("textbox", name="From", exact=True).fill(today)
    admin.get_by_role("textbox", name="To", exact=True).fill(today)
    admin.get_by_role("combobox", name="Patient").select_option(label="Alex R.")
    admin.get_by_role("button", name="Show").click()
    expect(admin).to_have_url(re.compile(rf"group_id={demo.group_id}.*patient_id={patient_id}"))
    row = admin.locator("#attendance-table tbody tr").filter(has_text="Alex R.")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("attended")
    with admin.expect_download() as download:
        admin.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(r["patient_id"], r["group_id"], r["status"]) for r in rows] == [(patient_id, demo.group_id, "attended")]
    assert int(rows[0]["reconnects"]) == 0 and rows[0]["intervals"].count("/") == 2  # admitted twice

    # -- the other admin pages: the clinic, a group with its brand editor, billing -----------------
    admin.get_by_role("link", name="Clinic").click()
    expect(admin.get_by_role("heading", name="Groups")).to_be_visible()
    check_accessibility(admin, "admin clinic")
    admin.get_by_role("link", name="Evening DBT Skills").click()
    expect(admin.get_by_role("button", name="Copy link for Alex R.")).to_be_visible()
    alex_link = admin.locator("tr").filter(has_text="Alex R.").locator("code.url")
    expect(alex_link).to_be_hidden()  # a link is a key: not on screen until asked for
    admin.get_by_role("button", name="Show link for Alex R.").click()
    expect(alex_link).to_have_text(demo.links[0])
    expect(admin.get_by_role("button", name="Hide link for Alex R.")).to_have_attribute("aria-expanded", "true")
    admin.get_by_role("button", name="Hide link for Alex R.").click()
    expect(alex_link).to_be_hidden()
    admin.get_by_role("textbox", name="Main colour", exact=True).fill("#6b4f8f")
    preview_bar = admin.locator("#brand-preview .brand-bar")
    expect(preview_bar).to_have_css("background-color", "rgb(107, 79, 143)")
    check_accessibility(admin, "admin group and brand editor")
    screenshot(admin, "admin-group-1280", full_page=True)
    # Sam T. is discharged: the enrolment ends (after a confirmation) and the link stops working.
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.get_by_role("button", name="End enrolment of Sam T.").click()
    expect(admin.locator("tr").filter(has_text="Sam T.")).to_contain_text("ended")
    expect(admin.get_by_role("button", name="Copy link for Sam T.")).to_have_count(0)
    sam = new_page(360, 740)
    sam.goto(demo.links[2])
    expect(sam.get_by_role("heading", name="This link is not working")).to_be_visible()
    admin.get_by_role("link", name="Billing").click()
    expect(admin.get_by_role("heading", name="Billing deliveries")).to_be_visible()
    # What a biller needs: the service date, the code, units and modifiers, and a short visit marked.
    # The demo's history was billed when the demo started, so "today" can also be a history row's
    # creation date (in UTC): today's session is the one of a test's few minutes, below minimum.
    todays = admin.locator("tr[data-record-id]").filter(has_text="Alex R.").filter(has_text="below minimum")
    expect(todays).to_have_count(1)
    expect(todays).to_contain_text(today)
    expect(todays).to_contain_text("90853")
    expect(todays).to_contain_text("10 home")
    check_accessibility(admin, "admin billing")
    screenshot(admin, "admin-billing-1280", full_page=True)

    # A patient's name and external id are edited in their row (PATCH /patients, audited).
    admin.get_by_role("link", name="Clinic").click()
    admin.get_by_role("textbox", name="External id of Jordan M.").fill("MRN-2041")
    admin.get_by_role("button", name="Save reminders of Jordan M.").click()
    expect(admin.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    expect(admin.get_by_role("textbox", name="External id of Jordan M.")).to_have_value("MRN-2041")
    check_accessibility(admin, "admin clinic with editable patients")

    assert not media_problems, "; ".join(media_problems)
