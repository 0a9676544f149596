"""Fixtures of the console's browser tests: one chromium for all of them, a fresh context per test (cheap on
two cores), one gateway with the sandbox configuration for the module, and a page that fails its test
on a page error or a CSP violation and leaves a screenshot when the test fails."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.console.browser import CHROMIUM, FAILURES, Watch, off_thread, screenshot_name
from tests.harness import DEVELOPER, NewWorld, World

ADMIN = "user:dev/root"


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One chromium for this directory's tests, closed after its last one: Playwright's sync API keeps
    an event loop running on the main thread, which other directories' fixtures need free."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make chromium` installs it (never `playwright install`)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a context of its own; the test fails if the page threw or broke the CSP."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(15_000)
    opened = context.new_page()
    watch = Watch()
    watch.attach(opened)
    try:
        yield opened
        if request.node.stash.get(FAILED, False):
            FAILURES.mkdir(parents=True, exist_ok=True)
            opened.screenshot(path=FAILURES / screenshot_name(request.node.nodeid), full_page=True)
        assert watch.problems == [], "the console page failed:\n" + "\n".join(watch.problems)
    finally:
        context.close()


@contextmanager
def world_of(new_world: NewWorld, **options: Any) -> Iterator[World]:
    """`new_world(**options)`, entered and left off the browser's thread."""
    manager = new_world(**options)
    started = off_thread(manager.__enter__)
    try:
        yield started
    finally:
        off_thread(lambda: manager.__exit__(None, None, None))


@pytest.fixture(scope="module")
def world(new_world: NewWorld) -> Iterator[World]:
    """The sandbox configuration: alice the developer may use gpt-4o and embed; root is an admin."""
    with world_of(new_world, env={"GATEWAY_ADMINS": ADMIN},
                  tokens={"root": None, "alice": DEVELOPER}) as started:
        yield started
