"""Signing in to the console: the token's claims and expiry shown, kept in memory only unless the user
opts in, and forgotten on Forget."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.console.browser import open_console, sign_in
from tests.harness import AUDIENCE, World


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


def test_a_reload_forgets_the_token_unless_the_user_opted_in(page: Page, world: World) -> None:
    open_console(page, world.url)
    sign_in(page, world.tokens["alice"])
    page.reload()
    expect(page.get_by_test_id("token-claims")).to_be_hidden()

    sign_in(page, world.tokens["alice"], keep=True)
    page.reload()
    expect(page.get_by_test_id("token-claims")).to_contain_text('"sub": "alice"')
    page.get_by_test_id("token-forget").click()
    assert page.evaluate("() => sessionStorage.length") == 0
    page.reload()
    expect(page.get_by_test_id("token-claims")).to_be_hidden()
    assert page.context.cookies() == [] and page.evaluate("() => localStorage.length") == 0


def test_an_expired_token_says_so(page: Page, world: World) -> None:
    open_console(page, world.url)
    sign_in(page, world.idp.mint("alice", expires_in=-60, audience=AUDIENCE))
    expect(page.get_by_test_id("token-expiry")).to_have_text("expired")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_console_fits_a_phone_and_works_from_the_keyboard(page: Page, world: World, scheme: str) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    page.emulate_media(color_scheme=scheme)   # type: ignore[arg-type]
    open_console(page, world.url)
    page.get_by_test_id("token-input").focus()
    page.keyboard.type(world.tokens["alice"])
    page.keyboard.press("Enter")                      # the form signs in without a pointer
    expect(page.get_by_test_id("token-claims")).to_be_attached()
    page.get_by_test_id("nav-models").focus()
    page.keyboard.press("Enter")
    page.get_by_test_id("model-row").first.wait_for()
    page.get_by_test_id("model-test").first.focus()
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"                          # focus is visible
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375   # no sideways scrolling
    for control in page.locator("input, select, textarea").all():
        assert control.evaluate("c => Boolean(c.labels?.length || c.getAttribute('aria-label'))")
