"""Helpers for browser tests: signing in, axe-core inside the page, and screenshots to look at."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.browser.conftest import Demo

SCREENSHOTS = Path(__file__).parent / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"


def sign_in(page: Any, demo: Demo, path: str, username: str, password: str) -> None:
    """Open a staff page, get sent to the sign-in form, sign in, and land back on the page."""
    from playwright.sync_api import expect

    page.goto(demo.url + path)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    # Not "**{path}": the sign-in page's own URL (/login?next=/console) ends with the path too.
    page.wait_for_url(lambda url: "/login" not in url and url.split("?", 1)[0].endswith(path))


def check_accessibility(page: Any, label: str) -> None:
    """Run axe-core inside the page (WCAG 2.1 A/AA and best practices); no violations allowed."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        # Evaluated through DevTools, so the page's CSP (no inline script) does not apply.
        page.evaluate(AXE.read_text())
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
        return r.violations.map(v => ({id: v.id, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ' — ' + n.failureSummary)}));
    }""")
    assert not result, f"axe violations on {label}:\n" + "\n".join(
        f"- {v['id']}: {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in result)


def screenshot(page: Any, name: str, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page, animations="disabled")
