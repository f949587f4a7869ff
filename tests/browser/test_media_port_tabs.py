"""PORCHLIGHT_MEDIA_PORT with real Chromium: a facilitator tab and two patient tabs see and hear
each other, and every connection Chromium selected (publish and subscribe, each tab) leads to the
server's one media port."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Demo, running_demo
from tests.browser.test_media_tabs import AUDIO_IN, HARNESS, SEES_TWO, staff_call
from tests.conftest import free_udp_port

pytestmark = pytest.mark.timeout(180)

SELECTED_REMOTE_PORTS = """async () => {
  const ports = [];
  for (const pc of [window.harness.link.publishPc, window.harness.link.subscribePc]) {
    const stats = await pc.getStats();
    const transport = [...stats.values()].find((s) => s.type === "transport" && s.selectedCandidatePairId);
    if (!transport) return null;
    const pair = stats.get(transport.selectedCandidatePairId);
    ports.push(stats.get(pair.remoteCandidateId).port);
  }
  return ports;
}"""


@pytest.fixture(scope="module")
def media_port() -> int:
    return free_udp_port()


@pytest.fixture(scope="module")
def demo(chromium_path: str, tmp_path_factory: pytest.TempPathFactory, media_port: int) -> Iterator[Demo]:
    with running_demo(tmp_path_factory.mktemp("demo"), PORCHLIGHT_MEDIA_PORT=str(media_port)) as running:
        yield running


def test_three_tabs_hold_a_session_through_one_server_port(demo: Demo, new_page: Any, media_port: int) -> None:
    facilitator = new_page()
    login = facilitator.request.post(f"{demo.url}/api/v1/login",
                                     data={"username": "facilitator", "password": demo.facilitator_password})
    assert login.ok, login.text()
    csrf = login.json()["csrf_token"]
    session_id = staff_call(facilitator, demo, "POST", f"/groups/{demo.group_id}/sessions", csrf)["id"]
    try:
        patients = []
        for link in demo.links[:2]:
            page = new_page()
            page.goto(f"{demo.url}/healthz")
            page.evaluate(HARNESS, {"hello": {"type": "hello", "token": link.rsplit("/j/", 1)[1],
                                              "location": "home"}, "startOn": "admitted"})
            page.wait_for_function("() => window.harness.frames.includes('waiting')")
            patients.append(page)
        staff_call(facilitator, demo, "POST", f"/sessions/{session_id}/admit", csrf, {"all": True})
        facilitator.goto(f"{demo.url}/healthz")
        facilitator.evaluate(HARNESS, {"hello": {"type": "hello", "session_id": session_id}, "startOn": "roster"})
        tabs = [facilitator, *patients]
        for tab in tabs:
            tab.wait_for_function(SEES_TWO, timeout=60_000)
        for tab in tabs:
            tab.wait_for_function(AUDIO_IN, polling=200, timeout=30_000)
        for tab in tabs:
            assert tab.evaluate(SELECTED_REMOTE_PORTS) == [media_port, media_port]
        metrics = facilitator.request.get(f"{demo.url}/metrics").text()
        assert "porchlight_media_port_dropped_total" in metrics
    finally:
        staff_call(facilitator, demo, "POST", f"/sessions/{session_id}/end", csrf)
