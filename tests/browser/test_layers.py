"""Per-viewer adaptation in real Chromium (issue 13, "Done when"): one tab publishes simulcast,
two viewer tabs show it in a small and a large tile and receive different layers (getStats
frameWidth); making the large tile small changes its layer within 2 s; a hidden tile receives
no video while its sound goes on, and shown again it plays within 2 s."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM_ARGS, Demo
from tests.browser.test_media_tabs import staff_call

HARNESS = (Path(__file__).parent / "layers_harness.js").read_text()
PUBLISH_ANSWER = "() => window.harness.link?.publishPc?.remoteDescription?.sdp ?? null"

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
            # Our voice goes with Opus DTX: the offer asked for it and the server's answer agrees.
            until(lambda: publisher.evaluate(PUBLISH_ANSWER) is not None, 20, "the publish offer was not answered")
            assert re.search(r"a=fmtp:\d+ [^\r\n]*usedtx=1", publisher.evaluate(PUBLISH_ANSWER))
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


REPORT_A_TILE = """async ([width, height]) => {
  const { ViewReporter } = await import("/static/view.js");
  const tile = document.createElement("div");
  tile.style.cssText = `width: ${width}px; height: ${height}px`;
  document.body.append(tile);
  return await new Promise((resolve) => {
    const reporter = new ViewReporter((tiles) => { if (tiles.length) resolve(tiles); });
    reporter.watch("someone", tile);
  });
}"""


@pytest.mark.parametrize("scale, expected", [(3, (380, 284)), (2, (190, 142)), (1, (190, 142))])
def test_a_tile_is_reported_at_a_density_of_two_on_dense_screens_and_one_otherwise(
        demo: Demo, browser: Any, scale: int, expected: tuple[int, int]) -> None:
    # A phone at 3x reports its 190 px thumbnails as 380 px (the middle layer), not 570 (the
    # camera's full layer on every tile); a 2x laptop screen reports CSS pixels (LiveKit's rule).
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=scale)
    page = context.new_page()
    page.goto(f"{demo.url}/healthz")
    [tile] = page.evaluate(REPORT_A_TILE, [190, 142])
    assert (tile["id"], tile["width"], tile["height"]) == ("someone", *expected)
    page.goto("about:blank")


OFFER = ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
         "m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n"
         "a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n"
         "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\na=fmtp:96 x-google=1\r\n")


def test_the_publish_offer_asks_for_opus_dtx_once_and_touches_nothing_else(demo: Demo, new_page: Any) -> None:
    page = new_page()
    page.goto(f"{demo.url}/healthz")
    dtx = page.evaluate("async (sdp) => { const { withDtx } = await import('/static/media.js');"
                        " const once = withDtx(sdp); return [once, withDtx(once)]; }", OFFER)
    assert dtx[0] == OFFER.replace("a=fmtp:111 minptime=10;useinbandfec=1\r\n",
                                   "a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1\r\n")
    assert dtx[1] == dtx[0]  # a re-offer already asking for it is left alone
    page.goto("about:blank")
