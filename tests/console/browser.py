"""The console as a browser sees it: Debian's chromium driven by Playwright, a page that fails its test
on a script error or a Content Security Policy violation, and the steps every test takes (open, sign in).

Never `playwright install`: the browser is the system's /usr/bin/chromium (`make chromium`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Error, Page

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent.parent
FAILURES = ROOT / "test-results" / "console"     # screenshots of failed tests (gitignored)
CSP_MESSAGE = re.compile(r"content security policy", re.IGNORECASE)


@dataclass
class Watch:
    """What went wrong in the page while a test drove it: uncaught errors and CSP violations."""

    problems: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("pageerror", self._page_error)
        page.on("console", self._console)

    def _page_error(self, error: Error) -> None:
        self.problems.append(f"page error: {error.message}")

    def _console(self, message: ConsoleMessage) -> None:
        if CSP_MESSAGE.search(message.text):
            self.problems.append(f"CSP violation: {message.text}")


def open_console(page: Page, base_url: str) -> None:
    """The console's page, its modules loaded (the nav is built by them)."""
    page.goto(f"{base_url}/console/")
    page.get_by_test_id("nav-models").wait_for()


def sign_in(page: Page, token: str, *, keep: bool = False) -> None:
    page.get_by_test_id("token-input").fill(token)
    if keep:
        page.get_by_label("Keep for this tab").check()
    page.get_by_test_id("token-apply").click()
    page.get_by_test_id("token-claims").wait_for(state="attached")


def screenshot_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("_")[:180] + ".png"


def off_thread[T](work: Callable[[], T]) -> T:
    """`work` in a thread of its own: Playwright's sync API keeps an event loop running in this thread,
    so the harness's own `asyncio.run` (writing the tables) must run elsewhere."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result()
