"""Models in the console: one row per model the caller may use, Test making a real call through the
gateway (success, and an upstream failure told in words), and Open in playground."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from sandbox.emulator import Fault
from tests.console.browser import open_console, sign_in
from tests.harness import World


@pytest.fixture
def failing_upstream(world: World) -> Iterator[None]:
    """The emulator fails every call to secret-model's deployment (retries and all) during the test."""
    world.emulator.faults.extend(Fault(status=500, deployment="x") for _ in range(20))
    yield
    world.emulator.faults.clear()


def models(page: Page, world: World, who: str) -> None:
    open_console(page, world.url)
    sign_in(page, world.tokens[who])
    page.get_by_test_id("nav-models").click()
    page.get_by_test_id("model-row").first.wait_for()


def test_the_rows_are_the_models_the_caller_may_use(page: Page, world: World) -> None:
    models(page, world, "alice")
    names = page.get_by_test_id("model-row").evaluate_all("rows => rows.map(r => r.dataset.name)")
    assert sorted(names) == ["embed", "gpt-4o"]
    expect(page.get_by_text("gpt-4o-dep")).to_be_visible()      # the configuration she may see
    expect(page.get_by_test_id("error-banner")).to_be_hidden()


def test_test_reports_a_real_call(page: Page, world: World) -> None:
    models(page, world, "alice")
    row = page.locator('[data-testid="model-row"][data-name="gpt-4o"]')
    row.get_by_test_id("model-test").click()
    result = row.get_by_test_id("model-test-result")
    expect(result).to_have_attribute("data-outcome", "pass")
    expect(result).to_contain_text("200 OK in")
    assert world.emulator.requests[-1].deployment == "gpt-4o-dep"


def test_test_tells_an_upstream_failure_in_words(page: Page, world: World, failing_upstream: None) -> None:
    models(page, world, "root")
    row = page.locator('[data-testid="model-row"][data-name="secret-model"]')
    row.get_by_test_id("model-test").click()
    result = row.get_by_test_id("model-test-result")
    expect(result).to_have_attribute("data-outcome", "fail", timeout=30_000)
    expect(result).to_contain_text("502 upstream_error")


def test_open_in_playground_picks_the_model(page: Page, world: World) -> None:
    models(page, world, "alice")
    page.locator('[data-testid="model-row"][data-name="embed"]').get_by_test_id("model-open-playground").click()
    expect(page).to_have_url(f"{world.url}/console/#/playground?model=embed")
