"""The tools of a running session (CONTRACT.md v1.1, "In the session") in real Chromium: a
facilitator's console and a patient on a 360x640 phone. A word to the staff from the waiting
room and a private message back, a raised hand, chat both ways and with group chat turned
off, the patient's own mute and camera as the console's tile shows them, "Mute all", and the
calm notice while the facilitator's connection is gone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Demo
from tests.browser.support import check_accessibility, screenshot, sign_in

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def patient_expectations() -> Iterator[None]:
    """Two tabs with live media share two cores: expectations wait as long as page actions do."""
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    yield
    expect.set_options(timeout=5_000)  # Playwright's default, for the modules that follow

# Everything a phone user needs with the chat open, on screen at once: inside the viewport, not
# covered by anything (the sticky controls, say), and the page not scrolled to reach it.
ON_SCREEN = """(selectors) => {
  const problems = selectors.map((selector) => {
    const element = document.querySelector(selector);
    const box = element.getBoundingClientRect();
    const inside = box.width > 0 && box.top >= 0 && box.left >= 0
      && box.bottom <= window.innerHeight && box.right <= window.innerWidth;
    const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    const seen = inside && top !== null && (element === top || element.contains(top));
    return seen ? null : `${selector} (${Math.round(box.top)}..${Math.round(box.bottom)})`;
  }).filter(Boolean);
  if (document.scrollingElement.scrollHeight > window.innerHeight + 1) problems.push("the page scrolls");
  return problems;
}"""


def test_hand_chat_mute_and_the_facilitator_away_between_console_and_patient(demo: Demo, new_page: Any) -> None:
    from playwright.sync_api import expect

    # -- the facilitator starts the session; the patient checks in on a phone -------------------
    staff = new_page(1280, 800)
    sign_in(staff, demo, "/console", "facilitator", demo.facilitator_password)
    card = staff.locator(".group-card").filter(has_text="Evening DBT Skills")
    card.get_by_role("button", name="Start session").click()
    console_chat = staff.get_by_role("region", name="Chat")

    patient = new_page(360, 640)
    patient.goto(demo.links[0])
    patient.get_by_role("button", name="Check in").click()
    expect(patient.get_by_role("heading", name="You're checked in")).to_be_visible()
    # The console's waiting list comes on its session socket: once Alex is on it, the staff are in.
    alex_waiting = staff.get_by_role("list", name="Waiting room").get_by_role("listitem").filter(has_text="Alex R.")
    expect(alex_waiting).to_be_visible()

    # -- waiting: a word to the staff only, and a private answer --------------------------------
    waiting_chat = patient.get_by_role("region", name="Chat")
    expect(waiting_chat).to_contain_text("messages go to the staff only")
    expect(waiting_chat.get_by_role("combobox", name="To")).to_be_hidden()
    waiting_chat.get_by_role("textbox", name="Message", exact=True).fill("My camera is slow to start, sorry.")
    waiting_chat.get_by_role("button", name="Send", exact=True).click()
    sent = console_chat.locator(".chat-message").filter(has_text="My camera is slow to start")
    expect(sent).to_contain_text("Alex R.")
    expect(sent).to_contain_text("to staff")
    expect(sent).to_contain_text("in the waiting room")
    expect(waiting_chat).to_contain_text("My camera is slow to start")  # back to its sender
    check_accessibility(patient, "the waiting room with chat")
    screenshot(patient, "waiting-chat-360", full_page=True)

    alex_waiting.get_by_role("button", name="Message").click()
    dialog = staff.get_by_role("dialog", name="Message to Alex R.")
    dialog.get_by_role("textbox").fill("No rush, I will let you in in a moment.")
    dialog.get_by_role("button", name="Send").click()
    expect(patient.locator("#messages")).to_contain_text("No rush, I will let you in")

    alex_waiting.get_by_role("button", name="Admit").click()
    expect(patient.get_by_role("button", name="Leave", exact=True)).to_be_visible()
    alex_in = staff.get_by_role("list", name="Participants").get_by_role("listitem").filter(has_text="Alex R.")
    alex_tile = staff.locator("#grid .tile").filter(has_text="Alex R.")
    expect(alex_in).to_be_visible()
    dana_tile = patient.locator(".tile").filter(has_text="Dana Whitfield")
    expect(dana_tile).to_be_visible()
    patient.evaluate("() => window.scrollTo(0, 0)")
    off_screen = patient.evaluate(ON_SCREEN, [".tile:not(.is-self)", "#toggle-hand", "#toggle-chat", "#leave"])
    assert not off_screen, f"at 360x640 in the session, not on screen: {off_screen}"

    # -- a raised hand shows on the console, on the list and on the tile ------------------------
    patient.get_by_role("button", name="Raise hand").click()
    expect(patient.get_by_role("button", name="Lower hand")).to_have_attribute("aria-pressed", "true")
    expect(alex_in).to_contain_text("hand raised")
    expect(alex_tile).to_contain_text("hand raised")
    patient.get_by_role("button", name="Lower hand").click()
    expect(alex_tile).not_to_contain_text("hand raised")
    expect(patient.get_by_role("button", name="Raise hand")).to_have_attribute("aria-pressed", "false")

    # -- chat both ways: the phone keeps the video and the chat on one screen -------------------
    console_chat.get_by_role("textbox", name="Message", exact=True).fill("Welcome, everyone.")
    console_chat.get_by_role("button", name="Send", exact=True).click()
    expect(console_chat).to_contain_text("Welcome, everyone.")
    chat_button = patient.get_by_role("button", name="Chat", exact=True)
    expect(patient.locator("#chat-unread")).to_have_text("1")
    chat_button.click()
    expect(chat_button).to_have_attribute("aria-expanded", "true")
    session_chat = patient.get_by_role("region", name="Chat")
    welcome = session_chat.locator(".chat-message").filter(has_text="Welcome, everyone.")
    expect(welcome).to_contain_text("Dana Whitfield")
    expect(welcome).not_to_contain_text("to staff")
    session_chat.get_by_role("textbox", name="Message", exact=True).fill("Hi all, glad to be here.")
    session_chat.get_by_role("button", name="Send", exact=True).click()
    hello = console_chat.locator(".chat-message").filter(has_text="Hi all, glad to be here.")
    expect(hello).to_contain_text("Alex R.")
    expect(hello).not_to_contain_text("to staff")
    patient.evaluate("() => window.scrollTo(0, 0)")
    off_screen = patient.evaluate(ON_SCREEN, [".tile:not(.is-self)", "#chat-text", "#chat .chat-compose button",
                                              "#toggle-audio", "#leave"])
    assert not off_screen, f"at 360x640 with the chat open, not on screen: {off_screen}"
    check_accessibility(patient, "the session with the chat open")
    screenshot(patient, "session-chat-360")
    patient.set_viewport_size({"width": 1280, "height": 800})  # a laptop: the chat beside the videos
    off_screen = patient.evaluate(ON_SCREEN, [".tile:not(.is-self)", "#chat-text", "#chat .chat-compose button",
                                              "#toggle-audio", "#leave"])
    assert not off_screen, f"at 1280x800 with the chat open, not on screen: {off_screen}"
    screenshot(patient, "session-chat-1280")
    patient.set_viewport_size({"width": 360, "height": 640})

    # -- group chat off: the patient is told plainly and can still write to the staff -----------
    group_chat = staff.get_by_role("switch", name="Group chat")
    group_chat.uncheck()
    expect(group_chat).to_be_enabled()  # disabled while the change is sent
    expect(group_chat).not_to_be_checked()  # and left so: the server took it
    session_chat.get_by_role("textbox", name="Message", exact=True).fill("Can everyone hear me?")
    session_chat.get_by_role("button", name="Send", exact=True).click()
    expect(session_chat.get_by_role("alert")).to_have_text(
        "The facilitator has turned group chat off; you can still message the staff.")
    expect(session_chat.get_by_role("combobox", name="To")).to_have_value("staff")
    expect(session_chat.get_by_role("textbox", name="Message", exact=True)).to_have_value("Can everyone hear me?")
    session_chat.get_by_role("button", name="Send", exact=True).click()
    expect(console_chat.locator(".chat-message").filter(has_text="Can everyone hear me?")).to_contain_text("to staff")
    group_chat.check()
    expect(group_chat).to_be_enabled()
    expect(group_chat).to_be_checked()

    # -- the patient's own microphone and camera, as the console's tile shows them -------------
    patient.get_by_role("button", name="Mute", exact=True).click()
    expect(alex_tile).to_contain_text("muted")
    expect(alex_in).to_contain_text("muted")
    patient.get_by_role("button", name="Unmute", exact=True).click()
    expect(alex_tile).not_to_contain_text("muted")
    patient.get_by_role("button", name="Stop video").click()
    expect(alex_tile).to_contain_text("camera off")
    expect(alex_tile.locator(".avatar")).to_have_text("AR")
    expect(alex_tile.locator(".avatar")).to_be_visible()
    expect(alex_tile.locator("video")).to_be_hidden()
    # A screen reader hears the state with the name: the tile's figure is named by its caption.
    expect(staff.get_by_role("figure", name=re.compile(r"Alex R\..*camera off"))).to_be_visible()
    check_accessibility(staff, "the console with chat, a muted and a camera-off patient")
    screenshot(staff, "console-tools-1280")
    patient.get_by_role("button", name="Start video").click()
    expect(alex_tile).not_to_contain_text("camera off")

    # -- and the other way: the patient's page shows the facilitator muted, camera off --------------
    staff.get_by_role("button", name="Mute my microphone").click()
    staff.get_by_role("button", name="Stop my video").click()
    expect(dana_tile).to_contain_text("muted")
    expect(dana_tile).to_contain_text("camera off")
    expect(dana_tile.locator(".avatar")).to_have_text("DW")
    expect(dana_tile.locator(".avatar")).to_be_visible()
    expect(patient.get_by_role("figure", name=re.compile(r"Dana Whitfield.*muted.*camera off"))).to_be_visible()
    screenshot(patient, "session-facilitator-camera-off-360")
    staff.get_by_role("button", name="Unmute my microphone").click()
    staff.get_by_role("button", name="Start my video").click()
    expect(dana_tile).not_to_contain_text("muted")
    expect(dana_tile).not_to_contain_text("camera off")

    # -- Mute all ----------------------------------------------------------------------------------
    staff.get_by_role("button", name="Mute all").click()
    expect(patient.get_by_role("button", name="Unmute", exact=True)).to_be_visible()
    expect(alex_tile).to_contain_text("muted")

    # -- the facilitator's connection goes: a calm notice, gone when they are back --------------
    staff.goto("about:blank")
    away = patient.locator("#away")
    expect(away).to_have_text("Your facilitator has lost their connection. Stay here; they will be back shortly.")
    expect(away).to_be_visible()
    screenshot(patient, "facilitator-away-360")
    check_accessibility(patient, "the session while the facilitator is away")
    staff.goto(demo.url + "/console")  # the console goes straight back into the session it ran
    expect(away).to_be_hidden()

    staff.get_by_role("button", name="End session").click()
    staff.get_by_role("dialog", name="End the session for everyone?").get_by_role("button", name="End session").click()
    expect(patient.get_by_role("heading", name="The session has ended")).to_be_visible()

    # -- the facilitator's summary: who came, for how long ---------------------------------------
    summary = staff.get_by_role("region", name="Session summary: Evening DBT Skills")
    expect(summary).to_contain_text("1 of 3 came.")
    expect(summary.get_by_role("row", name=re.compile(r"^Alex R\. yes"))).to_be_visible()
    expect(summary.get_by_role("row", name=re.compile(r"^Jordan M\. no"))).to_be_visible()
    check_accessibility(staff, "the session summary")
    screenshot(staff, "console-summary-1280")
    summary.get_by_role("button", name="Close summary").click()
    expect(summary).to_be_hidden()
