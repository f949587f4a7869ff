"""Measures in real Chromium (CONTRACT.md v1.1, "Measures, alerts and feedback"): a patient on a
360x640 phone answers a PHQ-9 while waiting; a thoughts-of-self-harm answer above 0 puts a
banner on the facilitator's console (until acknowledged) and shows the patient where to get help;
the questionnaire passes axe-core. A patient admitted before finishing finishes in the group, and
rates the session afterwards."""

from __future__ import annotations

import re
from typing import Any

import pytest

from server.measures.instruments import PHQ9
from tests.browser.conftest import Demo
from tests.browser.support import check_accessibility, screenshot, sign_in

pytestmark = pytest.mark.timeout(180)

NO_SIDEWAYS_SCROLL = "() => document.scrollingElement.scrollWidth <= window.innerWidth"


def test_a_phone_patient_answers_a_phq9_and_item_9_alerts_the_console(demo: Demo, new_page: Any) -> None:
    from playwright.sync_api import expect

    admin = new_page(1280, 800)  # the admin asks the PHQ-9 at every session of the group
    sign_in(admin, demo, f"/admin/groups/{demo.group_id}", "admin", demo.admin_password)
    settings = admin.locator("#questionnaires-form")
    settings.get_by_role("combobox", name="PHQ-9 (depression)").select_option(label="Every session")
    settings.get_by_role("button", name="Save questionnaires").click()
    expect(admin.get_by_role("status").filter(has_text="Questionnaires saved.")).to_be_visible()
    check_accessibility(admin, "the admin group page with its questionnaires")

    staff = new_page(1280, 800)
    sign_in(staff, demo, "/console", "facilitator", demo.facilitator_password)
    expect(staff.locator(".group-card").filter(has_text="Evening DBT Skills")).to_be_visible()

    patient = new_page(360, 640)
    patient.goto(demo.links[0])
    patient.get_by_role("button", name="Check in").click()
    expect(patient.get_by_role("heading", name="You're checked in")).to_be_visible()
    form = patient.get_by_role("region", name=re.compile("While you wait"))
    expect(form).to_be_visible()
    expect(form).to_contain_text(PHQ9.question)
    expect(form).to_contain_text("Spitzer")  # the instruments' attribution
    items = [form.get_by_role("radiogroup", name=f"{i + 1}. {item.text}") for i, item in enumerate(PHQ9.items)]
    for group in items:
        expect(group.get_by_role("radio")).to_have_count(4)
    check_accessibility(patient, "the PHQ-9 in the waiting room")
    assert patient.evaluate(NO_SIDEWAYS_SCROLL), "the questionnaire is wider than the phone"

    # Unanswered questions are named, and nothing is sent.
    items[0].get_by_role("radio", name="Several days").check()
    form.get_by_role("button", name="Send my answers").click()
    expect(form.get_by_role("alert").filter(has_text="Please answer every question")).to_be_visible()
    expect(items[1].get_by_role("radio").first).to_be_focused()

    for group in items[1:8]:
        group.get_by_role("radio", name="Not at all").check()
    items[8].get_by_role("radio", name="More than half the days").check()
    screenshot(patient, "questionnaire-360", full_page=True)
    form.get_by_role("button", name="Send my answers").click()

    # The patient: where to get help now, never a score.
    crisis = patient.get_by_role("alert").filter(has_text="988")
    expect(crisis).to_be_visible()
    expect(crisis).to_contain_text("+1 555 0100")  # the clinic's support phone, from its brand
    expect(form).to_contain_text("Thank you. Your answers were saved")
    assert "score" not in form.inner_text().lower()
    assert patient.evaluate(NO_SIDEWAYS_SCROLL)
    check_accessibility(patient, "the crisis resources after item 9")
    screenshot(patient, "questionnaire-crisis-360", full_page=True)

    # The console: a banner that stays until acknowledged, and the title says so.
    banner = staff.get_by_role("region", name="Safety alerts").get_by_role("alert")
    expect(banner).to_contain_text("Safety alert")
    expect(banner).to_contain_text("Alex R.")
    expect(banner).to_contain_text("PHQ-9 question 9")
    expect(staff).to_have_title(re.compile(r"^Safety alert"))
    check_accessibility(staff, "the console with a safety alert")
    screenshot(staff, "console-safety-alert")
    staff.reload()  # still there after a reload, until someone acknowledges it
    expect(banner).to_contain_text("Alex R.")
    banner.get_by_role("textbox").fill("Called Alex; safe, plan in place")
    banner.get_by_role("button", name="Acknowledge").click()
    expect(staff.get_by_role("region", name="Safety alerts")).to_be_hidden()
    expect(staff).not_to_have_title(re.compile(r"^Safety alert"))

    # The facilitator's page for the patient: the score over time, and the alert acknowledged.
    staff.goto(demo.url + "/console")
    staff.locator(".group-card").filter(has_text="Evening DBT Skills").get_by_text("Patients' measures").click()
    staff.get_by_role("link", name="Alex R.").click()
    expect(staff.get_by_role("heading", name="Alex R.: measures")).to_be_visible()
    expect(staff.get_by_role("img", name=re.compile("PHQ-9 scores over time, 1 answers: first 3 \\(minimal\\)"))) \
        .to_be_visible()
    expect(staff.get_by_text("acknowledged (Called Alex; safe, plan in place)")).to_be_visible()
    check_accessibility(staff, "the patient's measures page")


SESSION = """async ([method, path, body]) => {
  const me = await (await fetch("/api/v1/me")).json();
  const response = await fetch(`/api/v1${path}`, {method, headers: {"Content-Type": "application/json",
    "X-CSRF-Token": me.csrf_token}, body: JSON.stringify(body || {})});
  return await response.json();
}"""


def test_a_questionnaire_is_finished_in_the_group_and_the_session_rated_once(demo: Demo, new_page: Any) -> None:
    from playwright.sync_api import expect

    staff = new_page(1280, 800)
    sign_in(staff, demo, "/admin/feedback", "admin", demo.admin_password)
    staff.wait_for_url(re.compile(r"://[^/]+/admin/feedback$"))
    staff.evaluate(SESSION, ["PATCH", f"/groups/{demo.group_id}",
                             {"questionnaires": [{"instrument": "GAD-7", "every": "session"}]}])
    session = staff.evaluate(SESSION, ["POST", f"/groups/{demo.group_id}/sessions", {}])

    patient = new_page(360, 640)
    patient.goto(demo.links[1])
    patient.get_by_role("button", name="Check in").click()
    expect(patient.get_by_role("heading", name="You're checked in")).to_be_visible()
    expect(patient.get_by_role("region", name=re.compile("While you wait"))).to_be_visible()
    staff.evaluate(SESSION, ["POST", f"/sessions/{session['id']}/admit", {"all": True}])
    expect(patient.get_by_role("button", name="Leave")).to_be_visible()

    # Admitted before finishing the GAD-7: it waits behind "Questionnaire" until the session ends.
    patient.get_by_role("button", name="Questionnaire").click()
    dialog = patient.get_by_role("dialog", name=re.compile("While you wait"))
    for i in range(7):
        item = dialog.get_by_role("radiogroup", name=re.compile(f"^{i + 1}\\. "))
        item.get_by_role("radio", name="Several days").check()
    check_accessibility(patient, "the questionnaire finished in the session")
    dialog.get_by_role("button", name="Send my answers").click()
    expect(dialog).to_contain_text("Thank you. Your answers were saved")
    dialog.get_by_role("button", name="Close").click()
    expect(patient.get_by_role("button", name="Questionnaire")).to_be_hidden()
    staff.evaluate(SESSION, ["POST", f"/sessions/{session['id']}/end", {}])

    expect(patient.get_by_role("heading", name="The session has ended")).to_be_visible()
    rating = patient.get_by_role("radiogroup", name="How helpful was today's group?")
    expect(rating).to_be_visible()
    patient.get_by_role("button", name="Send feedback").click()
    expect(patient.get_by_role("alert").filter(has_text="Choose a number from 1 to 5")).to_be_visible()
    rating.get_by_role("radio", name="5 — Very helpful").check()
    patient.get_by_role("textbox", name=re.compile("Anything you would like to add")).fill("The skills handout helped")
    check_accessibility(patient, "the feedback form after the session")
    assert patient.evaluate(NO_SIDEWAYS_SCROLL)
    patient.get_by_role("button", name="Send feedback").click()
    expect(patient.get_by_text("Thank you. Your facilitator's team reads every answer.")).to_be_visible()
    screenshot(patient, "feedback-360", full_page=True)

    patient.reload()  # answered: the link page does not ask again
    expect(patient.get_by_role("button", name="Check in")).to_be_visible()
    expect(patient.get_by_role("radiogroup", name="How helpful was today's group?")).to_be_hidden()

    staff.reload()
    expect(staff.get_by_role("region", name="Comments (1 of 1 answers)")).to_contain_text("The skills handout helped")
    check_accessibility(staff, "the admin feedback page")
