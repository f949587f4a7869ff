"""Three Chromium tabs hold a group session through the server: live video and audio each way
(one tab sends H264, as Safari would, the others VP8), and a removed participant vanishes from
the others' screens within a second."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Demo

HARNESS = (Path(__file__).parent / "media_harness.js").read_text()
SEES_TWO = "() => Object.values(window.harness.videos).filter((v) => v.videoWidth > 0).length === 2"
AUDIO_IN = """async () => {
  const stats = await window.harness.link.subscribePc.getStats();
  return [...stats.values()].filter((s) => s.type === "inbound-rtp" && s.kind === "audio" && s.packetsReceived > 0)
    .length === 2;
}"""

SENT_CODEC = """async () => {
  const stats = await window.harness.link.publishPc.getStats();
  const out = [...stats.values()].find((s) => s.type === "outbound-rtp" && s.kind === "video" && s.codecId);
  return out ? stats.get(out.codecId).mimeType : null;
}"""

pytestmark = pytest.mark.timeout(180)


def staff_call(page: Any, demo: Demo, method: str, path: str, csrf: str, body: Any = None) -> Any:
    response = page.request.fetch(f"{demo.url}/api/v1{path}", method=method, data=body,
                                  headers={"X-CSRF-Token": csrf, "Origin": demo.url})
    assert response.ok, f"{method} {path}: {response.status} {response.text()}"
    return response.json()


def test_three_tabs_see_and_hear_each_other_and_a_removed_patient_vanishes(demo: Demo, new_page: Any) -> None:
    facilitator = new_page()
    login = facilitator.request.post(f"{demo.url}/api/v1/login",
                                     data={"username": "facilitator", "password": demo.facilitator_password})
    assert login.ok, login.text()
    csrf = login.json()["csrf_token"]
    session = staff_call(facilitator, demo, "POST", f"/groups/{demo.group_id}/sessions", csrf)
    session_id = session["id"]
    try:
        patients = []
        for link, codec in zip(demo.links[:2], ["video/H264", None], strict=True):  # one sends H264, as Safari
            page = new_page()
            page.goto(f"{demo.url}/healthz")
            page.evaluate(HARNESS, {"hello": {"type": "hello", "token": link.rsplit("/j/", 1)[1],
                                              "location": "home"}, "startOn": "admitted",
                                    "preferVideoCodec": codec})
            page.wait_for_function("() => window.harness.frames.includes('waiting')")
            patients.append(page)
        waiting = staff_call(facilitator, demo, "GET", f"/sessions/{session_id}", csrf)["waiting"]
        ids = [w["patient_id"] for w in waiting]
        assert len(ids) == 2
        staff_call(facilitator, demo, "POST", f"/sessions/{session_id}/admit", csrf, {"patient_ids": ids})

        facilitator.goto(f"{demo.url}/healthz")
        facilitator.evaluate(HARNESS, {"hello": {"type": "hello", "session_id": session_id}, "startOn": "roster"})

        tabs = [facilitator, *patients]
        for tab in tabs:
            tab.wait_for_function(SEES_TWO, timeout=60_000)
        for tab in tabs:  # remote audio: inbound packets on both audio streams
            tab.wait_for_function(AUDIO_IN, polling=200, timeout=30_000)
        # The first patient really sends H264, and the others decode it (their tiles have a size).
        assert patients[0].evaluate(SENT_CODEC) == "video/H264"
        assert facilitator.evaluate(SENT_CODEC) == "video/VP8"

        removed = ids[1]
        staff_call(facilitator, demo, "POST", f"/sessions/{session_id}/remove", csrf, {"patient_id": removed})
        asked = time.monotonic()
        for tab in (facilitator, patients[0]):
            tab.wait_for_function(f"() => !({removed!r} in window.harness.videos)", timeout=5_000)
        elapsed = time.monotonic() - asked
        assert elapsed < 1.0, f"the removed patient stayed on screen for {elapsed:.2f}s"
        # The two who remain still see each other.
        facilitator.wait_for_function(
            "() => Object.values(window.harness.videos).filter((v) => v.videoWidth > 0).length === 1")
    finally:
        staff_call(facilitator, demo, "POST", f"/sessions/{session_id}/end", csrf)

