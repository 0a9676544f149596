"""Explain in the console: an admin pastes a token and sees every check with its outcome and reason,
and the effective role."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.console.browser import open_console, sign_in
from tests.harness import AUDIENCE, DEVELOPER, World


def explain(page: Page, world: World, token: str, resource: str) -> None:
    open_console(page, world.url)
    sign_in(page, world.tokens["root"])
    page.get_by_test_id("nav-explain").click()
    page.get_by_test_id("explain-token").fill(token)
    page.get_by_test_id("explain-resource").fill(resource)
    page.get_by_test_id("explain-run").click()
    page.get_by_test_id("explain-check").first.wait_for()


@pytest.mark.parametrize(("case", "mint", "failed", "reason"), [
    ("expired", {"expires_in": -3600}, "time", "expired"),
    ("foreign issuer", {"issuer": "https://elsewhere.example"}, "issuer", "issuer"),
])
def test_a_refused_token_shows_the_failed_check_and_why(page: Page, world: World, case: str,
                                                        mint: dict[str, object], failed: str,
                                                        reason: str) -> None:
    token = world.idp.mint("alice", claims=DEVELOPER, audience=AUDIENCE, **mint)  # type: ignore[arg-type]
    explain(page, world, token, "model:gpt-4o")

    result = page.get_by_test_id("explain-result")
    refusal = result.locator(f'[data-testid="explain-check"][data-check="{failed}"]')
    expect(refusal).to_have_attribute("data-outcome", "fail")
    expect(refusal).to_contain_text(reason)
    expect(result.locator('[data-testid="explain-check"][data-outcome="pass"]').first).to_be_visible()
    expect(result).to_contain_text("Refused")
    assert token not in page.content()     # the pasted token stays in its field's value, never in the page


def test_an_accepted_token_shows_every_check_passing_and_the_role(page: Page, world: World) -> None:
    explain(page, world, world.tokens["alice"], "model:gpt-4o")

    result = page.get_by_test_id("explain-result")
    checks = result.get_by_test_id("explain-check")
    expect(checks.first).to_be_visible()
    assert set(checks.evaluate_all("nodes => nodes.map(n => n.dataset.outcome)")) == {"pass"}
    assert {"issuer", "time", "signature", "access"} <= set(
        checks.evaluate_all("nodes => nodes.map(n => n.dataset.check)"))
    expect(result).to_contain_text("Effective role")
    expect(result).to_contain_text("viewer")
