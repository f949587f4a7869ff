"""Cameras and microphones as patients really have them, in real Chromium: one patient on a
360x640 phone whose browser blocks both, who is told at once (at the top of the screen, without
scrolling), checks in anyway, and is shown on the console as having no camera or microphone; and
one on a laptop who joins with sound only, whose camera is then really released (its track
stopped, so the camera light goes off) and comes back on "Start video" without a new offer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Demo
from tests.browser.support import check_accessibility, screenshot, sign_in

pytestmark = pytest.mark.timeout(180)

# The browser's answer when the person chose "Block" (or a policy blocks the camera).
BLOCKED = """(() => {
  navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
})();"""

# Every camera and microphone track the page opens, kept where the test can see them.
RECORD_TRACKS = """(() => {
  window.openedTracks = [];
  const devices = navigator.mediaDevices;
  const original = devices.getUserMedia.bind(devices);
  devices.getUserMedia = async (constraints) => {
    const stream = await original(constraints);
    window.openedTracks.push(...stream.getTracks());
    return stream;
  };
})();"""

LIVE_CAMERAS = "() => window.openedTracks.filter((t) => t.kind === 'video' && t.readyState === 'live').length"
# Distinct publish offers (a refused offer sent again is the same one): a renegotiation is a new one.
PUBLISH_OFFERS = "() => window.publishOffers.size"
COUNT_OFFERS = """(() => {
  window.publishOffers = new Set();
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    const frame = typeof data === "string" && data.startsWith("{") ? JSON.parse(data) : null;
    if (frame && frame.type === "offer" && frame.pc === "publish") window.publishOffers.add(frame.sdp);
    return send.call(this, data);
  };
})();"""

# What the tile shows: a picture that is really arriving.
TILE_VIDEO = """(name) => {
  const tile = [...document.querySelectorAll('#grid .tile')].find((t) => t.textContent.includes(name));
  const video = tile && tile.querySelector('video');
  return Boolean(video && tile.classList.contains('has-video') && video.videoWidth > 0);
}"""

IN_VIEW = """(selector) => {
  const box = document.querySelector(selector).getBoundingClientRect();
  return box.height > 0 && box.top >= 0 && box.top < window.innerHeight - 40;
}"""


@pytest.fixture(autouse=True)
def patient_expectations() -> Iterator[None]:
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    yield
    expect.set_options(timeout=5_000)


def test_a_blocked_camera_is_told_at_once_and_sound_only_releases_the_camera(demo: Demo, new_page: Any) -> None:
    from playwright.sync_api import expect

    staff = new_page(1280, 800)
    sign_in(staff, demo, "/console", "facilitator", demo.facilitator_password)
    staff.locator(".group-card").filter(has_text="Evening DBT Skills").get_by_role(
        "button", name="Start session").click()
    waiting_room = staff.get_by_role("list", name="Waiting room")
    participants = staff.get_by_role("list", name="Participants")

    # -- a phone that blocks the camera and microphone: told at the top, and can still check in --
    blocked = new_page(360, 640)
    blocked.add_init_script(BLOCKED)
    blocked.goto(demo.links[1])
    status = blocked.locator("#status")
    expect(status).to_have_text("Your camera and microphone are blocked. You can allow them (see below) "
                                "or check in without them.")
    help_box = blocked.locator("#device-help")
    expect(help_box).to_contain_text("choose Allow")
    expect(help_box).to_contain_text("Or check in without them")
    assert blocked.evaluate("() => window.scrollY") == 0
    assert blocked.evaluate(IN_VIEW, "#device-help"), "the help is not on the first screen of a 360x640 phone"
    check_accessibility(blocked, "the door with the camera and microphone blocked")
    screenshot(blocked, "door-blocked-360")
    blocked.get_by_role("button", name="Check in").click()
    expect(blocked.get_by_role("heading", name="You're checked in")).to_be_visible()

    jordan_waiting = waiting_room.get_by_role("listitem").filter(has_text="Jordan M.")
    jordan_waiting.get_by_role("button", name="Admit").click()
    expect(blocked.get_by_role("button", name="Leave", exact=True)).to_be_visible()
    expect(blocked.locator("#device-note")).to_have_text(
        "No camera or microphone: the group cannot see or hear you. You can write in the chat.")
    # Nothing greyed out without a reason: "Unmute" asks again, and says what is still in the way.
    unmute = blocked.get_by_role("button", name="Unmute", exact=True)
    expect(unmute).to_be_enabled()
    unmute.click()
    expect(status).to_contain_text("Your browser is still blocking the camera and microphone")
    check_accessibility(blocked, "the session without camera or microphone")
    screenshot(blocked, "session-blocked-360")

    # The facilitator sees why Jordan is silent and dark, not just "muted".
    expect(participants.get_by_role("listitem").filter(has_text="Jordan M.")).to_contain_text(
        "no camera or microphone")
    jordan_tile = staff.locator("#grid .tile").filter(has_text="Jordan M.")
    expect(jordan_tile).to_contain_text("no microphone")
    expect(jordan_tile).to_contain_text("no camera")
    expect(jordan_tile.locator(".avatar")).to_have_text("JM")
    expect(staff.get_by_role("figure", name=re.compile(r"Jordan M\..*no microphone.*no camera"))).to_be_visible()

    # -- a laptop joining with sound only: the camera is released, and comes back ----------------
    laptop = new_page(1280, 800)
    laptop.add_init_script(RECORD_TRACKS)
    laptop.add_init_script(COUNT_OFFERS)
    laptop.goto(demo.links[2])
    laptop.wait_for_function("() => document.getElementById('preview').videoWidth > 0")
    expect(laptop.locator("#status")).to_have_text(
        "Your camera and microphone are working. Check in when you are ready.")
    # Choosing a microphone and a camera: the picker lists them by name, and a choice is used at once.
    laptop.get_by_text("Choose camera, microphone or speaker").click()
    microphone = laptop.get_by_role("combobox", name="Microphone")
    camera = laptop.get_by_role("combobox", name="Camera")
    expect(camera.locator("option")).not_to_have_count(0)
    names = microphone.locator("option").all_text_contents()
    assert names and all(names), f"microphones without names: {names}"
    microphone.select_option(index=len(names) - 1)
    expect(laptop.locator("#status")).to_contain_text("Now using")
    laptop.wait_for_function("() => Number(document.getElementById('mic-meter').getAttribute('aria-valuenow')) > 0")
    camera.select_option(index=camera.locator("option").count() - 1)
    laptop.wait_for_function("() => document.getElementById('preview').videoWidth > 0")
    assert laptop.evaluate(LIVE_CAMERAS) == 1  # the one before was stopped, not left running
    check_accessibility(laptop, "the door with the device picker open")
    screenshot(laptop, "door-devices-1280")
    laptop.get_by_label("Join with sound only (camera off)").check()
    laptop.wait_for_function(f"() => ({LIVE_CAMERAS})() === 0")  # stopped, not just disabled
    laptop.get_by_role("button", name="Check in").click()
    waiting_room.get_by_role("listitem").filter(has_text="Sam T.").get_by_role("button", name="Admit").click()
    start_video = laptop.get_by_role("button", name="Start video")
    expect(start_video).to_be_visible()
    expect(laptop.locator("#session-bar").get_by_text("Devices", exact=True)).to_be_visible()
    laptop.wait_for_function("() => window.publishOffers.size === 1")
    sam_tile = staff.locator("#grid .tile").filter(has_text="Sam T.")
    expect(sam_tile).to_contain_text("camera off")  # chose it: not "no camera"
    expect(participants.get_by_role("listitem").filter(has_text="Sam T.")).not_to_contain_text("no camera")
    assert laptop.evaluate(LIVE_CAMERAS) == 0

    start_video.click()
    expect(laptop.get_by_role("button", name="Stop video")).to_be_visible()
    assert laptop.evaluate(LIVE_CAMERAS) == 1
    staff.wait_for_function(TILE_VIDEO, arg="Sam T.", timeout=25_000)  # the console sees the new camera
    expect(sam_tile).not_to_contain_text("camera off")
    # The connection in one word, from getStats: good here; the judgement behind it, case by case.
    expect(laptop.locator("#connection")).to_have_text("Connection: good", timeout=20_000)
    expect(staff.locator("#connection")).to_have_text("Connection: good", timeout=20_000)
    cases = [{"state": "connected", "rtt": 0.05, "loss": 0}, {"state": "connected", "rtt": 0.05, "loss": 0.2},
             {"state": "connected", "rtt": 0.9, "loss": None}, {"state": "disconnected", "rtt": None, "loss": None},
             {"state": "failed", "rtt": 0.05, "loss": 0}, {"state": "new", "rtt": None, "loss": None}]
    judged = laptop.evaluate("""async (cases) => {
      const { judge } = await import("/static/quality.js");
      return cases.map(judge);
    }""", cases)
    assert judged == ["good", "weak", "weak", "reconnecting", "reconnecting", None]
    laptop.get_by_role("button", name="Stop video").click()
    expect(sam_tile).to_contain_text("camera off")
    laptop.wait_for_function(f"() => ({LIVE_CAMERAS})() === 0")
    assert laptop.evaluate(PUBLISH_OFFERS) == 1, "turning the camera off and on sent a new publish offer"
    check_accessibility(staff, "the console with a patient without devices and one with sound only")
    check_accessibility(laptop, "the session with the connection indicator")
    screenshot(staff, "console-devices-1280")

    # Removed, in gentle words, and the facilitator's own words quoted once, not "tomorrow..".
    participants.get_by_role("listitem").filter(has_text="Sam T.").get_by_role("button", name="Remove").click()
    remove = staff.get_by_role("dialog", name="Remove Sam T. from the session?")
    remove.get_by_role("textbox").fill("Let's talk tomorrow.")
    remove.get_by_role("button", name="Remove").click()
    expect(laptop.get_by_role("heading", name="Your place in this session has ended")).to_be_visible()
    expect(laptop.locator("#ended-text")).to_have_text(
        "Your facilitator says: “Let's talk tomorrow.” If you have questions, call +1 555 0100.")

    staff.get_by_role("button", name="End session").click()
    staff.get_by_role("dialog", name="End the session for everyone?").get_by_role("button", name="End session").click()
    expect(blocked.get_by_role("heading", name="The session has ended")).to_be_visible()
