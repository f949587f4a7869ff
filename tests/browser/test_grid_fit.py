"""A full group in real Chromium: the facilitator and twelve patients (the demo group's capacity),
thirteen tiles on a patient's 360x640 phone and on a 1280x800 laptop, and on the console. Every
tile is on screen without scrolling, none under the controls, and every name is shown whole
(checked by geometry: the name's box is not cut, and what is drawn at its centre is the name).
Speaker view shows the facilitator large; "Hide self view" takes one's own tile away.

Eleven of the patients are plain WebSockets opened in one page (no media), so the room is real
(the server's roster) without thirteen cameras on two cores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Demo
from tests.browser.support import check_accessibility, screenshot, sign_in

pytestmark = pytest.mark.timeout(180)

# Names as clinics write them, some long, so a small tile has to wrap rather than cut them.
NEW_PATIENTS = ["Maria Guadalupe S.", "Chris P.", "Taylor-Jordan W.", "Nguyen Thi H.", "Sam K.",
                "Alexandra R.", "Jo B.", "Priya N.", "Oluwaseun A."]

CROWD = """async ({ tokens }) => {
  window.crowd = await Promise.all(tokens.map((token) => new Promise((resolve, reject) => {
    const socket = new WebSocket(location.origin.replace(/^http/, "ws") + "/api/v1/ws");
    socket.onopen = () => socket.send(JSON.stringify({ type: "hello", token, location: "home" }));
    socket.onmessage = (event) => { if (JSON.parse(event.data).type === "waiting") resolve(socket); };
    socket.onerror = () => reject(new Error("a crowd socket failed"));
  })));
  return window.crowd.length;
}"""

# Every tile inside the viewport and not covered; every name whole and the topmost thing at its
# centre; the page itself does not scroll.
FITS = """() => {
  const problems = [];
  const tiles = [...document.querySelectorAll('#grid .tile')].filter((t) => !t.hidden);
  for (const tile of tiles) {
    const name = tile.querySelector('.tile-name');
    const box = tile.getBoundingClientRect();
    const label = name.textContent;
    if (box.top < 0 || box.left < 0 || box.bottom > window.innerHeight + 0.5 || box.right > window.innerWidth + 0.5) {
      problems.push(`${label}: tile outside the screen (${Math.round(box.top)}..${Math.round(box.bottom)})`);
    }
    const text = name.getBoundingClientRect();
    const cut = name.scrollWidth > name.clientWidth + 1 || name.scrollHeight > name.clientHeight + 1;
    if (cut) problems.push(`${label}: name cut`);
    if (text.top < box.top || text.bottom > box.bottom + 0.5 || text.left < box.left || text.right > box.right + 0.5) {
      problems.push(`${label}: name outside its tile`);
    }
    const top = document.elementFromPoint(text.left + text.width / 2, text.top + text.height / 2);
    if (!top || !name.contains(top)) problems.push(`${label}: name covered by ${top && (top.id || top.className)}`);
  }
  if (document.scrollingElement.scrollHeight > window.innerHeight + 1) problems.push("the page scrolls");
  return { count: tiles.length, problems };
}"""


@pytest.fixture(autouse=True)
def patient_expectations() -> Iterator[None]:
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    yield
    expect.set_options(timeout=5_000)


def _enrol(admin: Any, demo: Demo) -> list[str]:
    """Nine more patients in the demo group; their tokens."""
    csrf = admin.locator("meta[name=csrf-token]").get_attribute("content")
    headers = {"X-CSRF-Token": csrf, "Origin": demo.url}
    tokens = []
    for name in NEW_PATIENTS:
        patient = admin.request.post(f"{demo.url}/api/v1/patients", data={"display_name": name}, headers=headers)
        assert patient.ok, patient.text()
        enrolment = admin.request.post(f"{demo.url}/api/v1/groups/{demo.group_id}/enrollments",
                                       data={"patient_id": patient.json()["id"]}, headers=headers)
        assert enrolment.ok, enrolment.text()
        tokens.append(enrolment.json()["join_url"].split("/j/", 1)[1])
    return tokens


def test_thirteen_tiles_fit_a_phone_and_a_laptop_with_every_name_whole(demo: Demo, new_page: Any) -> None:
    from playwright.sync_api import expect

    admin = new_page(1280, 800)
    sign_in(admin, demo, "/admin", "admin", demo.admin_password)
    tokens = _enrol(admin, demo) + [link.split("/j/", 1)[1] for link in demo.links[1:]]

    staff = new_page(1280, 800)
    sign_in(staff, demo, "/console", "facilitator", demo.facilitator_password)
    staff.locator(".group-card").filter(has_text="Evening DBT Skills").get_by_role(
        "button", name="Start session").click()
    expect(staff.get_by_role("button", name="End session")).to_be_visible()

    patient = new_page(360, 640)
    patient.goto(demo.links[0])
    patient.get_by_role("button", name="Check in").click()
    expect(patient.get_by_role("heading", name="You're checked in")).to_be_visible()
    assert admin.evaluate(CROWD, {"tokens": tokens}) == 11
    expect(staff.get_by_role("list", name="Waiting room").get_by_role("listitem")).to_have_count(12)
    staff.get_by_role("button", name="Admit all").click()
    expect(patient.locator("#grid .tile")).to_have_count(13)
    expect(staff.locator("#grid .tile")).to_have_count(13)
    # A question about an earlier session (the demo's history may hold one from the day before)
    # waits until the group is over: it does not push the videos off a phone's screen.
    expect(patient.locator("#feedback")).to_be_hidden()

    for width, height in ((360, 640), (1280, 800)):
        patient.set_viewport_size({"width": width, "height": height})
        patient.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        fits = patient.evaluate(FITS)
        assert fits == {"count": 13, "problems": []}, f"at {width}x{height}: {fits['problems']}"
        screenshot(patient, f"session-13-{width}")
    check_accessibility(patient, "the session with thirteen tiles")
    staff.evaluate("() => window.scrollTo(0, 0)")  # the console scrolls (its chat is below the videos)
    fits = staff.evaluate(FITS)
    assert fits["count"] == 13 and not [p for p in fits["problems"] if "page scrolls" not in p], fits["problems"]
    screenshot(staff, "console-13-1280")

    # -- speaker view: the facilitator large; hiding one's own tile --------------------------------
    patient.set_viewport_size({"width": 360, "height": 640})
    speaker = patient.get_by_role("button", name="Speaker view")
    speaker.click()
    expect(speaker).to_have_attribute("aria-pressed", "true")
    featured = patient.locator("#grid .tile.is-featured")
    expect(featured).to_contain_text("Dana Whitfield")
    grid_box = patient.locator("#grid").bounding_box()
    featured_box = featured.bounding_box()
    assert grid_box and featured_box and featured_box["height"] > grid_box["height"] * 0.5
    check_accessibility(patient, "speaker view")
    screenshot(patient, "session-speaker-360")
    speaker.click()
    patient.get_by_role("button", name="Hide self view").click()
    expect(patient.locator("#grid .tile.is-self")).to_be_hidden()
    fits = patient.evaluate(FITS)
    assert fits == {"count": 12, "problems": []}, fits["problems"]
    patient.get_by_role("button", name="Hide self view").click()
    expect(patient.locator("#grid .tile.is-self")).to_be_visible()

    admin.evaluate("() => window.crowd.forEach((socket) => socket.close())")
    staff.get_by_role("button", name="End session").click()
    staff.get_by_role("dialog", name="End the session for everyone?").get_by_role("button", name="End session").click()
    expect(patient.get_by_role("heading", name="The session has ended")).to_be_visible()
