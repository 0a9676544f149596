"""Signing in to the console: the token's claims and expiry shown, kept in memory only unless the user
opts in, and forgotten on Forget."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.console.browser import open_console, sign_in
from tests.harness import World


def test_sign_in_shows_the_claims_and_forget_clears_them(page: Page, world: World) -> None:
    open_console(page, world.url)
    sign_in(page, world.tokens["alice"])

    claims = page.get_by_test_id("token-claims")
    expect(claims).to_contain_text('"sub": "alice"')
    expect(claims).to_contain_text('"developers"')
    expect(page.get_by_test_id("token-expiry")).to_contain_text("expires in")
    assert page.evaluate("() => sessionStorage.length") == 0      # not kept unless asked

    page.get_by_test_id("token-forget").click()
    expect(claims).to_be_hidden()
