"""The other resource screens: an account's "get a token now" shows the upstream credential's outcome in
words (never the secret), and an external identity is created through the form with its claims."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.console.browser import open_console, sign_in
from tests.harness import EMULATOR_KEY, World
from tests.manage.conftest import wait_until


def screen(page: Page, world: World, nav: str) -> None:
    open_console(page, world.url)
    sign_in(page, world.tokens["root"])
    page.get_by_test_id(f"nav-{nav}").click()


@pytest.mark.parametrize(("account", "outcome", "words"), [
    ("emulator", "pass", "Credential usable (api-key)"),
    ("keyless", "fail", "GATEWAY_SECRET_NOT_SET"),
])
def test_get_a_token_now(page: Page, world: World, account: str, outcome: str, words: str) -> None:
    api = world.api("root")
    if account == "keyless":
        doc = {"kind": "azure-openai", "endpoint": world.emulator.url,
               "auth": {"type": "api-key", "key_env": "GATEWAY_SECRET_NOT_SET"}}
        assert api.put("accounts/keyless", doc).status_code in (200, 201)
    screen(page, world, "accounts")
    page.locator(f'[data-testid="account-row"][data-name="{account}"]').click()
    page.get_by_test_id("account-check").click()
    result = page.get_by_test_id("account-check-result")
    expect(result).to_have_attribute("data-outcome", outcome)
    expect(result).to_contain_text(words)
    if outcome == "fail":
        expect(result).to_contain_text("fix: key_env")
    assert EMULATOR_KEY not in page.content()


def test_create_an_external_identity_with_its_claims(page: Page, world: World) -> None:
    screen(page, world, "external-identities")
    page.get_by_test_id("external-identity-new").click()
    page.get_by_test_id("external-identity-name").fill("operators")
    page.get_by_test_id("external-identity-identity-provider").fill("dev")
    page.get_by_test_id("external-identity-claims").fill('{"groups": "ops"}')
    page.get_by_test_id("external-identity-save").click()
    expect(page.locator('[data-testid="external-identity-row"][data-name="operators"]')).to_contain_text("ops")
    assert world.api("root").get("external-identities/operators").json() == {
        "name": "operators", "identity_provider": "dev", "claims": {"groups": "ops"}}


def test_invalid_json_is_named_before_anything_is_sent(page: Page, world: World) -> None:
    screen(page, world, "external-identities")
    page.get_by_test_id("external-identity-new").click()
    page.get_by_test_id("external-identity-name").fill("broken")
    page.get_by_test_id("external-identity-identity-provider").fill("dev")
    page.get_by_test_id("external-identity-claims").fill("{groups: ops")
    page.get_by_test_id("external-identity-save").click()
    expect(page.get_by_test_id("error-banner")).to_contain_text("Claims: not valid JSON")
    assert world.api("root").get("external-identities/broken").status_code == 404


def test_stored_text_renders_as_text(page: Page, world: World) -> None:
    canary = "<img src=x onerror=alert(1)>"
    doc = {"identity_provider": "dev", "claims": {"groups": canary}}
    assert world.api("root").put("external-identities/canary", doc).status_code == 201
    screen(page, world, "external-identities")
    row = page.locator('[data-testid="external-identity-row"][data-name="canary"]')
    expect(row).to_contain_text(canary)
    row.click()
    claims = page.get_by_test_id("external-identity-claims")
    expect(claims).to_have_value('{\n  "groups": "' + canary + '"\n}')
    assert page.locator("main img").count() == 0


def test_a_team_is_created_with_its_members_and_its_manager_may_only_change_them(page: Page,
                                                                                  world: World) -> None:
    screen(page, world, "teams")
    page.get_by_test_id("team-new").click()
    page.get_by_test_id("team-name").fill("partners")
    page.get_by_test_id("team-members").fill("user:dev/bob, identity:developers")
    page.get_by_test_id("team-save").click()
    expect(page.locator('[data-testid="team-row"][data-name="partners"]')).to_contain_text("2")
    root = world.api("root")
    assert sorted(root.get("teams/partners").json()["members"]) == ["identity:developers", "user:dev/bob"]
    assert root.put("collaborators", {"resource": "team:partners", "principal": "identity:developers",
                                      "role": "manager"}).status_code == 201
    alice = world.api("alice", groups=["developers"])
    assert wait_until(lambda: alice.get("teams/partners").status_code == 200)    # the grant has arrived

    page.get_by_test_id("token-forget").click()
    sign_in(page, world.tokens["alice"])        # a member of identity:developers: the team's manager
    page.get_by_test_id("nav-teams").click()
    page.locator('[data-testid="team-row"][data-name="partners"]').click()
    expect(page.get_by_test_id("team-save")).to_be_visible()
    expect(page.get_by_test_id("team-delete")).to_be_hidden()     # admins delete teams
