"""The facilitator's console chooses its camera, microphone and speaker with the patient page's
picker (web/static/device_picker.js): listed by name, a choice used at once on the same sender
(no new publish offer), the camera before it stopped, remembered for the next session; axe-clean."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Demo
from tests.browser.support import check_accessibility, screenshot, sign_in
from tests.browser.test_devices import COUNT_OFFERS, LIVE_CAMERAS, PUBLISH_OFFERS, RECORD_TRACKS

pytestmark = pytest.mark.timeout(180)


def test_the_console_chooses_its_camera_and_microphone(demo: Demo, new_page: Any) -> None:
    from playwright.sync_api import expect

    staff = new_page(1280, 800)
    staff.add_init_script(RECORD_TRACKS)
    staff.add_init_script(COUNT_OFFERS)
    sign_in(staff, demo, "/console", "facilitator", demo.facilitator_password)
    staff.locator(".group-card").filter(has_text="Evening DBT Skills").get_by_role(
        "button", name="Start session").click()
    staff.wait_for_function(f"() => ({PUBLISH_OFFERS})() === 1", timeout=20_000)
    staff.wait_for_function(f"() => ({LIVE_CAMERAS})() === 1")

    staff.get_by_text("Devices", exact=True).click()
    microphone = staff.get_by_role("combobox", name="Microphone")
    camera = staff.get_by_role("combobox", name="Camera")
    expect(camera.locator("option")).not_to_have_count(0)
    names = microphone.locator("option").all_text_contents()
    assert names and all(names), f"microphones without names: {names}"
    check_accessibility(staff, "the console with its device picker open")
    screenshot(staff, "console-device-picker-1280")

    last = microphone.locator("option").nth(len(names) - 1).get_attribute("value")
    microphone.select_option(index=len(names) - 1)
    expect(staff.locator("#room-status")).to_contain_text("Now using")
    camera.select_option(index=camera.locator("option").count() - 1)
    staff.wait_for_function(f"() => ({LIVE_CAMERAS})() === 1")  # the one before was stopped
    assert staff.evaluate(PUBLISH_OFFERS) == 1  # the same senders carry the new tracks
    expect(staff.get_by_role("button", name="Mute my microphone")).to_be_visible()
    # Remembered on this device, for the next session and the patient's page alike.
    assert staff.evaluate("() => JSON.parse(localStorage.getItem('porchlight.devices')).microphone") == last

    staff.once("dialog", lambda dialog: dialog.accept())
    staff.get_by_role("button", name="End session").click()
