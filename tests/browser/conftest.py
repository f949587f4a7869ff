"""Real headless Chromium (Playwright) against a real `porchlight demo` process.

Without Chromium these tests are skipped with the reason; with PORCHLIGHT_REQUIRE_BROWSER=1
(CI) a missing browser is a failure instead. The server is one process per test module, on
an ephemeral port and its own data dir, so the tests see only public behaviour.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Flags that work as root on a closed network (RECIPES.md), with fake media devices.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
]

# Group tests ask the fake camera for 320x240 at 15 fps: on two shared cores a bigger picture
# starves the server and the test driver.
SMALL_CAMERA = """
(() => {
  const devices = navigator.mediaDevices;
  if (!devices || !devices.getUserMedia) return;
  const original = devices.getUserMedia.bind(devices);
  devices.getUserMedia = (constraints = {}) => {
    if (constraints.video) constraints = { ...constraints, video: { width: 320, height: 240, frameRate: 15 } };
    return original(constraints);
  };
})();
"""


def _missing(reason: str) -> None:
    if os.environ.get("PORCHLIGHT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (PORCHLIGHT_REQUIRE_BROWSER=1)")
    pytest.skip(f"{reason}; install it (apt-get install -y chromium) or set PORCHLIGHT_REQUIRE_BROWSER=1 to fail")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        _missing("Chromium is not installed")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("Python Playwright is not installed (pip install -e '.[test]')")
    assert path is not None
    return path


@dataclass
class Demo:
    url: str
    facilitator_password: str
    admin_password: str
    group_id: str
    links: list[str]
    output: Path


@contextlib.contextmanager
def running_demo(data_dir: Path, **settings: str) -> Iterator[Demo]:
    """`porchlight demo` on an ephemeral port in `data_dir`, with extra PORCHLIGHT_* settings."""
    log = data_dir / "output.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORCHLIGHT_")}
    env.update({"PORCHLIGHT_DATA_DIR": str(data_dir), "PORCHLIGHT_PORT": "0", "PORCHLIGHT_HOST": "127.0.0.1",
                "PORCHLIGHT_LOG_LEVEL": "WARNING", **settings})
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "server", "demo"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (match := re.search(r"Porchlight is running at (https?://\S+)", log.read_text())) \
                or "Press Ctrl-C to stop the server." not in log.read_text():
            assert process.poll() is None, "the demo server exited:\n" + log.read_text()
            assert time.monotonic() < deadline, "the demo server did not start:\n" + log.read_text()
            time.sleep(0.1)
        text = log.read_text()

        def find(pattern: str) -> str:
            found = re.search(pattern, text)
            assert found, f"{pattern!r} not in the demo output"
            return found.group(1)

        yield Demo(
            url=match.group(1),
            facilitator_password=find(r"username facilitator\s+password (\S+)"),
            admin_password=find(r"username admin\s+password (\S+)"),
            group_id=find(r"group id:\s+(\S+)"),
            links=re.findall(r"(http://\S+/j/\S+)", text),
            output=log,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def demo(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`porchlight demo` on an ephemeral port: the clinic, its logins and three patient links.

    One per test module, so a module's records (attendance, sessions) are its own.
    """
    with running_demo(tmp_path_factory.mktemp("demo")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    # Per module, not per session: sync Playwright keeps an event loop running in this thread
    # while it is open, and the suite's asyncio tests that follow need the thread to themselves.
    from playwright.sync_api import sync_playwright

    marker = f"--porchlight-test-browser={uuid.uuid4().hex}"  # names this module's Chromium processes
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=[*CHROMIUM_ARGS, marker])
        launched.porchlight_marker = marker
        yield launched
        with _watchdog(marker), contextlib.suppress(Exception):
            launched.close()


CLOSE_WITHIN = 30.0  # seconds a browser's teardown may take before its processes are killed


@contextlib.contextmanager
def _watchdog(marker: str) -> Iterator[None]:
    """Chromium 156 sometimes hangs closing a page that held a camera and peer connections (for
    minutes, only under load). Closing is given CLOSE_WITHIN seconds; then this module's Chromium
    processes are killed, which ends the hung call, so a teardown cannot fail the run."""
    timer = threading.Timer(CLOSE_WITHIN, lambda: subprocess.run(["pkill", "-9", "-f", marker], check=False))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """Open pages in fresh contexts (one per person), with page errors collected and checked."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_page(width: int = 1280, height: int = 800, **options: Any) -> Any:
        # People of the demo clinic live where it is: its times read as their phones show them.
        options.setdefault("timezone_id", "America/Chicago")
        context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True, **options)
        context.add_init_script(SMALL_CAMERA)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        return page

    yield open_page
    found = list(errors)  # what the pages threw while the test ran (not while being closed below)
    # The pages are left (about:blank, a bounded wait: it ends their calls and stops their
    # cameras), not closed: closing a page or a context that held a camera and peer connections
    # can hang Chromium 156 for minutes. The module's browser closes them all at its end.
    for context in contexts:
        for page in context.pages:
            with contextlib.suppress(Exception):
                page.goto("about:blank", timeout=10_000)
    assert not found, "uncaught errors in the page:\n" + "\n".join(found)

