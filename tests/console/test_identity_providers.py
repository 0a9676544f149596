"""The identity providers screen: create, edit and delete a provider through the form, validate its keys
through the gateway, page through the list, and a non-admin sees no edit button (and is refused anyway)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.console.browser import open_console, sign_in
from tests.harness import World, free_port


def providers(page: Page, world: World, who: str = "root", query: str = "") -> None:
    open_console(page, world.url)
    sign_in(page, world.tokens[who])
    page.goto(f"{world.url}/console/#/identity-providers{query}")


def row(page: Page, name: str) -> Locator:
    return page.locator(f'[data-testid="idp-row"][data-name="{name}"]')


def test_create_edit_and_delete_a_provider_through_the_form(page: Page, world: World) -> None:
    providers(page, world)
    expect(row(page, "dev")).to_be_visible()

    page.get_by_test_id("idp-new").click()
    form = page.get_by_test_id("idp-form")
    form.get_by_test_id("idp-name").fill("partner")
    form.get_by_test_id("idp-jwks-uri").fill(world.idp.jwks_uri)
    form.get_by_test_id("idp-issuer").fill("https://partner.example")
    form.get_by_test_id("idp-audiences").fill("api://one, api://two")
    page.get_by_test_id("idp-save").click()
    expect(row(page, "partner")).to_contain_text("api://one, api://two")
    stored = world.api("root").get("identity-providers/partner").json()
    assert stored == {"name": "partner", "jwks_uri": world.idp.jwks_uri, "issuer": "https://partner.example",
                      "audiences": ["api://one", "api://two"]}

    row(page, "dev").click()                     # another row, then back: the form shows what is stored
    expect(page.get_by_test_id("idp-name")).to_have_value("dev")
    row(page, "partner").click()
    expect(page.get_by_test_id("idp-issuer")).to_have_value("https://partner.example")
    page.get_by_test_id("idp-issuer").fill("https://partner.example/v2")
    page.get_by_test_id("idp-audiences").fill("api://one")
    page.get_by_test_id("idp-save").click()
    expect(page.get_by_test_id("notice")).to_contain_text("Saved")
    expect(row(page, "partner")).to_contain_text("https://partner.example/v2")
    assert world.api("root").get("identity-providers/partner").json()["audiences"] == ["api://one"]

    page.get_by_test_id("idp-delete").click()
    page.get_by_test_id("confirm-ok").click()
    expect(row(page, "partner")).to_have_count(0)
    assert world.api("root").get("identity-providers/partner").status_code == 404


def test_a_stale_form_is_refused_rather_than_overwriting(page: Page, world: World) -> None:
    api = world.api("root")
    assert api.put("identity-providers/race", {"jwks_uri": world.idp.jwks_uri}).status_code == 201
    providers(page, world)
    row(page, "race").click()
    expect(page.get_by_test_id("idp-name")).to_have_value("race")
    assert api.put("identity-providers/race", {"jwks_uri": world.idp.jwks_uri, "issuer": "https://x"}).ok
    page.get_by_test_id("idp-issuer").fill("https://mine")
    page.get_by_test_id("idp-save").click()
    expect(page.get_by_test_id("error-banner")).to_contain_text("precondition_failed")
    assert api.get("identity-providers/race").json()["issuer"] == "https://x"
    assert api.delete("identity-providers/race").status_code == 204


@pytest.mark.parametrize(("jwks", "outcome", "words"), [
    ("idp", "pass", "key"),
    ("closed", "fail", "No usable keys"),
])
def test_validate_jwks_shows_what_the_gateway_found(page: Page, world: World, jwks: str, outcome: str,
                                                    words: str) -> None:
    uri = world.idp.jwks_uri if jwks == "idp" else f"http://127.0.0.1:{free_port()}/keys"
    name = f"check-{jwks}"
    assert world.api("root").put(f"identity-providers/{name}", {"jwks_uri": uri}).status_code == 201
    try:
        providers(page, world)
        row(page, name).click()
        page.get_by_test_id("idp-validate").click()
        result = page.get_by_test_id("idp-validate-result")
        expect(result).to_have_attribute("data-outcome", outcome)
        expect(result).to_contain_text(words)
    finally:
        world.api("root").delete(f"identity-providers/{name}")


def test_the_list_pages_on_the_server(page: Page, world: World) -> None:
    api = world.api("root")
    names = [f"page-{i}" for i in range(3)]
    for name in names:
        assert api.put(f"identity-providers/{name}", {"jwks_uri": world.idp.jwks_uri}).status_code == 201
    try:
        providers(page, world, query="?limit=2")
        seen: list[str] = []
        for _ in range(4):
            rows = page.get_by_test_id("idp-row")
            expect(rows.first).to_be_visible()
            assert rows.count() <= 2
            seen += [rows.nth(i).get_attribute("data-name") for i in range(rows.count())]
            more = page.get_by_test_id("next-page")
            if more.is_hidden():
                break
            first = rows.first.get_attribute("data-name")
            more.click()
            expect(rows.first).not_to_have_attribute("data-name", first)
        assert seen == sorted(["dev", *names])
    finally:
        for name in names:
            api.delete(f"identity-providers/{name}")


def test_a_non_admin_sees_no_edit_button_and_is_refused_anyway(page: Page, world: World) -> None:
    providers(page, world, who="alice")
    expect(page.get_by_test_id("idp-admins-only")).to_be_visible()
    expect(page.get_by_test_id("idp-new")).to_have_count(0)
    alice = world.api("alice", groups=["developers"])
    refused = alice.put("identity-providers/mine", {"jwks_uri": world.idp.jwks_uri})
    assert refused.status_code == 403
