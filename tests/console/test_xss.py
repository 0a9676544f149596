"""Text from the gateway or a token is shown as text, never run: an XSS canary in a model name and in a
token's claims renders as its characters, with no element made and no script run."""

from __future__ import annotations

import json

from playwright.sync_api import Dialog, Page, Route, expect

from tests.console.browser import open_console, sign_in
from tests.harness import AUDIENCE, World

CANARY = "<img src=x onerror=alert(1)>"


def watch_dialogs(page: Page) -> list[str]:
    opened: list[str] = []

    def record(dialog: Dialog) -> None:
        opened.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    return opened


def assert_inert(page: Page, opened: list[str]) -> None:
    page.wait_for_timeout(200)
    assert opened == []
    assert page.locator("main img, header img, nav img").count() == 0


def test_a_model_named_like_markup_renders_as_text(page: Page, world: World) -> None:
    """Model names are validated by the gateway, so the canary comes from a list answered in its place:
    the console must not rely on the server for its safety."""
    opened = watch_dialogs(page)

    def hostile_list(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json",
                      body=json.dumps({"object": "list", "data": [{"id": CANARY, "object": "model"}]}))

    page.route("**/v1/models", hostile_list)
    open_console(page, world.url)
    sign_in(page, world.tokens["alice"])
    page.get_by_test_id("nav-models").click()

    row = page.get_by_test_id("model-row")
    expect(row).to_have_attribute("data-name", CANARY)
    expect(row).to_contain_text(CANARY)
    page.get_by_test_id("nav-playground").click()
    expect(page.get_by_test_id("playground-model")).to_have_value(CANARY)
    assert_inert(page, opened)


def test_claims_like_markup_render_as_text(page: Page, world: World) -> None:
    opened = watch_dialogs(page)
    open_console(page, world.url)
    sign_in(page, world.idp.mint(CANARY, claims={"name": CANARY}, audience=AUDIENCE))

    expect(page.get_by_text(f"Signed in as {CANARY}")).to_be_visible()
    expect(page.get_by_test_id("token-claims")).to_contain_text(CANARY)
    assert_inert(page, opened)
