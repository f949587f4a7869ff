"""Screen share (CONTRACT.md v1.1) in real Chromium, between the console and a patient's page:
the facilitator's "Share screen" reaches the patient as a large picture under `<id>:screen` and
stops when the browser's own "Stop sharing" ends the track; a patient may share only once the
facilitator allows it, and taking the permission back stops it. Chromium's fake UI answers
getDisplayMedia with a synthetic screen."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Demo
from tests.browser.support import check_accessibility, screenshot, sign_in

pytestmark = pytest.mark.timeout(180)

# A small screen at a low rate (two shared cores), and the tracks kept where the test can end
# one as the browser's own "Stop sharing" button would.
SMALL_SCREEN = """
(() => {
  const devices = navigator.mediaDevices;
  if (!devices || !devices.getDisplayMedia) return;
  const original = devices.getDisplayMedia.bind(devices);
  window.displayTracks = [];
  devices.getDisplayMedia = async () => {
    const stream = await original({ video: { width: 640, height: 360, frameRate: 5 }, audio: false });
    window.displayTracks.push(...stream.getVideoTracks());
    return stream;
  };
})();
"""

# The browser's "Stop sharing": the track ends (stop() alone fires no event, the browser's does).
BROWSER_STOPS_SHARING = """() => {
  const track = window.displayTracks[window.displayTracks.length - 1];
  track.stop();
  track.dispatchEvent(new Event("ended"));
}"""

SHOWN_LARGE = """() => {
  const figure = document.querySelector(".screen-share");
  if (!figure) return false;
  const video = figure.querySelector("video");
  const widest = Math.max(0, ...[...document.querySelectorAll(".tile")].map((t) => t.getBoundingClientRect().width));
  return video.videoWidth > 0 && figure.getBoundingClientRect().width > widest;
}"""


@pytest.fixture(autouse=True)
def slow_expectations() -> Iterator[None]:
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    yield
    expect.set_options(timeout=5_000)


def test_the_facilitator_and_an_allowed_patient_share_their_screens(demo: Demo, new_page: Any) -> None:
    from playwright.sync_api import expect

    staff = new_page(1280, 800)
    staff.context.add_init_script(SMALL_SCREEN)
    sign_in(staff, demo, "/console", "facilitator", demo.facilitator_password)
    card = staff.locator(".group-card").filter(has_text="Evening DBT Skills")
    card.get_by_role("button", name="Start session").click()
    staff_id = staff.locator("#console").get_attribute("data-user-id")

    patient = new_page(1280, 800)
    patient.context.add_init_script(SMALL_SCREEN)
    patient.goto(demo.links[0])
    patient.get_by_role("button", name="Check in").click()
    expect(patient.get_by_role("heading", name="You're checked in")).to_be_visible()
    waiting = staff.get_by_role("list", name="Waiting room").get_by_role("listitem").filter(has_text="Alex R.")
    waiting.get_by_role("button", name="Admit").click()
    expect(patient.locator(".tile.has-video").filter(has_text="Dana Whitfield")).to_be_visible()
    share = patient.get_by_role("button", name="Share screen")
    expect(share).to_be_hidden()  # a patient is not allowed until the facilitator says so

    # -- the facilitator shares: the patient sees it large, under the facilitator's id ----------
    staff.get_by_role("button", name="Share screen").click()
    expect(staff.get_by_role("button", name="Stop sharing")).to_be_visible()
    shown = patient.locator(".screen-share")
    expect(shown).to_have_attribute("data-participant-id", staff_id)
    expect(shown).to_contain_text("Shared screen: Dana Whitfield")
    patient.wait_for_function(SHOWN_LARGE)
    # A stream of its own beside the camera, which goes on playing in the facilitator's tile.
    assert patient.evaluate("""() => {
      const screen = document.querySelector('.screen-share video').srcObject;
      const camera = [...document.querySelectorAll('.tile')].find((t) => t.textContent.includes('Dana'))
        .querySelector('video');
      return screen.id.endsWith(':screen') && camera.srcObject.id !== screen.id && camera.videoWidth > 0;
    }""")
    check_accessibility(patient, "the patient's page with a shared screen")
    screenshot(patient, "shared-screen-patient")

    staff.evaluate(BROWSER_STOPS_SHARING)
    expect(patient.locator(".screen-share")).to_have_count(0)
    expect(staff.get_by_role("button", name="Share screen")).to_be_visible()

    # -- the patient, once allowed; the permission taken back stops it ---------------------------
    alex = staff.get_by_role("list", name="Participants").get_by_role("listitem").filter(has_text="Alex R.")
    alex.get_by_role("button", name="Allow screen share").click()
    expect(share).to_be_visible()
    share.click()
    expect(patient.get_by_role("button", name="Stop sharing")).to_be_visible()
    expect(alex).to_contain_text("sharing their screen")
    expect(staff.locator(".screen-share")).to_contain_text("Shared screen: Alex R.")
    staff.wait_for_function(SHOWN_LARGE)
    check_accessibility(staff, "the console with a patient's shared screen")
    screenshot(staff, "shared-screen-console")

    alex.get_by_role("button", name="Stop their screen share").click()
    expect(staff.locator(".screen-share")).to_have_count(0)
    expect(alex).not_to_contain_text("sharing their screen")
    expect(patient.get_by_role("button", name="Share screen")).to_be_hidden()
    expect(patient.get_by_role("button", name="Stop sharing")).to_be_hidden()
    assert patient.evaluate("() => window.displayTracks.every((t) => t.readyState === 'ended')")
