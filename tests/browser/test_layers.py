"""Per-viewer adaptation in real Chromium (issue 13, "Done when"): one tab publishes simulcast,
two viewer tabs show it in a small and a large tile and receive different layers (getStats
frameWidth); making the large tile small changes its layer within 2 s; a hidden tile receives
no video while its sound goes on, and shown again it plays within 2 s."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM_ARGS, Demo
from tests.browser.test_media_tabs import staff_call

HARNESS = (Path(__file__).parent / "layers_harness.js").read_text()

pytestmark = pytest.mark.timeout(240)


def inbound(page: Any, pid: str) -> dict[str, int]:
    stats = page.evaluate("(id) => window.harness.inbound(id)", pid)
    return stats or {"width": 0, "packets": 0, "frames": 0}


def audio_packets(page: Any) -> int:
    return int(page.evaluate("""async () => {
      const stats = await window.harness.link.subscribePc.getStats();
      return [...stats.values()].filter((s) => s.type === "inbound-rtp" && s.kind === "audio")
        .reduce((sum, s) => sum + (s.packetsReceived || 0), 0);
    }"""))


def until(what: Any, timeout: float, message: str) -> float:
    """Poll `what()` until true; return how long it took."""
    started = time.monotonic()
    while not what():
        assert time.monotonic() - started < timeout, message
        time.sleep(0.1)
    return time.monotonic() - started


def test_viewers_get_the_layer_that_fits_their_tile_and_nothing_for_a_hidden_one(
        demo: Demo, new_page: Any, browser: Any) -> None:
    # The publisher's camera at 640x480 (the other tabs' fixture shrinks cameras to 320x240,
    # where browsers send one layer only).
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    publisher = context.new_page()
    errors: list[str] = []
    publisher.on("pageerror", lambda error: errors.append(str(error)))
    try:
        login = publisher.request.post(f"{demo.url}/api/v1/login",
                                       data={"username": "facilitator", "password": demo.facilitator_password})
        assert login.ok, login.text()
        csrf = login.json()["csrf_token"]
        staff_id = login.json()["user"]["id"]
        session_id = staff_call(publisher, demo, "POST", f"/groups/{demo.group_id}/sessions", csrf)["id"]
        try:
            viewers = []
            for link, size in zip(demo.links[:2], [(160, 120), (640, 480)], strict=True):
                page = new_page()
                page.goto(f"{demo.url}/healthz")
                page.evaluate(HARNESS, {"hello": {"type": "hello", "token": link.rsplit("/j/", 1)[1],
                                                  "location": "home"}, "startOn": "admitted", "publish": False})
                page.evaluate("([id, w, h]) => window.harness.size(id, w, h)", [staff_id, *size])
                page.wait_for_function("() => window.harness.frames.some((f) => f.type === 'waiting')")
                viewers.append(page)
            staff_call(publisher, demo, "POST", f"/sessions/{session_id}/admit", csrf, {"all": True})
            publisher.goto(f"{demo.url}/healthz")
            publisher.evaluate(HARNESS, {"hello": {"type": "hello", "session_id": session_id}, "startOn": "roster",
                                         "publish": True,
                                         "camera": {"width": 640, "height": 480, "frameRate": 15}})
            small, large = viewers
            for page in viewers:
                until(lambda p=page: inbound(p, staff_id)["frames"] > 10, 60, "no video reached a viewer")
            # Each layer the publisher sends, and what each viewer decodes.
            until(lambda: sum(1 for s in publisher.evaluate("() => window.harness.outbound()") if s["width"]) >= 2,
                  30, f"the publisher did not send two layers: {publisher.evaluate('() => window.harness.outbound()')}")
            layers = sorted({s["width"] for s in publisher.evaluate("() => window.harness.outbound()") if s["width"]})
            until(lambda: inbound(small, staff_id)["width"] == layers[0], 10,
                  f"the small tile did not get the low layer {layers}: {inbound(small, staff_id)}")
            until(lambda: inbound(large, staff_id)["width"] == layers[-1], 20,
                  f"the large tile did not get the high layer {layers}: {inbound(large, staff_id)}")

            # The large tile becomes small: its layer follows within 2 s, and keeps playing.
            large.evaluate("(id) => window.harness.size(id, 160, 120)", staff_id)
            took = until(lambda: inbound(large, staff_id)["width"] == layers[0], 5,
                         f"the layer did not follow the tile: {inbound(large, staff_id)}")
            assert took < 2.0, f"the layer changed {took:.2f}s after the tile did"
            frames = inbound(large, staff_id)["frames"]
            until(lambda: inbound(large, staff_id)["frames"] > frames + 5, 5, "the picture froze after the switch")

            # Hidden: no video while a second of the publisher's sound arrives; then shown again.
            small.evaluate("(id) => window.harness.size(id, 0, 0)", staff_id)
            hidden = "(id) => !window.harness.views.at(-1).some((tile) => tile.id === id)"
            until(lambda: small.evaluate(hidden, staff_id), 5, "no view without the hidden tile was sent")
            time.sleep(0.3)  # packets already on their way
            video, audio = inbound(small, staff_id)["packets"], audio_packets(small)
            until(lambda: audio_packets(small) > audio + 50, 10, "the hidden participant's sound stopped")
            assert inbound(small, staff_id)["packets"] == video, "a hidden tile received video"
            frames = inbound(small, staff_id)["frames"]
            small.evaluate("(id) => window.harness.size(id, 160, 120)", staff_id)
            took = until(lambda: inbound(small, staff_id)["frames"] > frames + 2, 5, "the shown tile stayed frozen")
            assert took < 2.0, f"the tile played again {took:.2f}s after it was shown"
        finally:
            staff_call(publisher, demo, "POST", f"/sessions/{session_id}/end", csrf)
    finally:
        context.close()
    assert not errors, errors
    assert "--use-fake-device-for-media-stream" in CHROMIUM_ARGS
