"""The console before the staff idle sign-out, in real Chromium, on a server whose idle timeout
is 24 s: "Still there?" with a countdown comes first; "I'm here" keeps the facilitator signed in;
left alone, the page signs out and the sign-in page says why. And the arrival chime: while the
browser holds sound back until a click, the console says so and offers that click."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Demo, running_demo
from tests.browser.support import check_accessibility, screenshot, sign_in

pytestmark = pytest.mark.timeout(150)

IDLE_SECONDS = 24

# The browser's autoplay rule, which the test browser's flags turn off: Web Audio starts suspended
# and resumes only once the page has had a click or a key (sticky user activation).
SOUND_HELD_BACK = """(() => {
  const Original = window.AudioContext;
  const resume = Original.prototype.resume;
  const allowed = () => navigator.userActivation.hasBeenActive;
  window.AudioContext = class extends Original {
    constructor(options) { super(options); if (!allowed()) this.suspend(); }
    resume() { return allowed() ? resume.call(this) : Promise.resolve(); }
  };
})();"""


@pytest.fixture(scope="module")
def idle_demo(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo(tmp_path_factory.mktemp("idle"),
                      PORCHLIGHT_STAFF_IDLE_TIMEOUT_SECONDS=str(IDLE_SECONDS)) as running:
        yield running


def test_still_there_comes_before_the_idle_sign_out_which_says_why(idle_demo: Demo, new_page: Any) -> None:
    from playwright.sync_api import expect

    page = new_page(1280, 800)
    page.add_init_script(SOUND_HELD_BACK)
    sign_in(page, idle_demo, "/console", "facilitator", idle_demo.facilitator_password)
    expect(page.get_by_role("heading", name="Your groups")).to_be_visible()
    page.goto(idle_demo.url + "/console")  # opened afresh (a bookmark, a reload): not clicked yet

    sound = page.locator("#sound-note")
    expect(sound).to_contain_text("Sound is off")
    page.get_by_role("button", name="Turn on sound").click()
    expect(sound).to_be_hidden()
    expect(page.locator("#flash")).to_contain_text("Sound is on")

    # Nothing touched: the warning comes before the server's timeout, with the time left.
    dialog = page.get_by_role("dialog", name="Still there?")
    expect(dialog).to_be_visible(timeout=IDLE_SECONDS * 1000)
    expect(dialog).to_contain_text("you will be signed out in")
    dialog.get_by_role("button", name="I'm here").click()
    expect(dialog).to_be_hidden()
    page.reload()  # still signed in: the console, not the sign-in page
    expect(page.get_by_role("heading", name="Your groups")).to_be_visible()

    # Left alone again: the warning, then signed out by the page, and told why.
    expect(dialog).to_be_visible(timeout=IDLE_SECONDS * 1000)
    assert 0 < int(page.locator("#idle-countdown").text_content() or "0") <= IDLE_SECONDS // 2
    check_accessibility(page, "the console's idle warning")
    screenshot(page, "console-still-there-1280")
    sign_in_heading = page.get_by_role("heading", name="Porchlight staff sign-in")
    expect(sign_in_heading).to_be_visible(timeout=IDLE_SECONDS * 1000)
    expect(page.get_by_role("status")).to_have_text("You were signed out after 24 seconds without activity, to keep "
                                                    "patients' information safe. Sign in to carry on.")
    check_accessibility(page, "the sign-in page after an idle sign-out")
    screenshot(page, "login-after-idle")
    page.goto(idle_demo.url + "/console")  # the sign-out was real
    expect(page.get_by_role("heading", name="Porchlight staff sign-in")).to_be_visible()
