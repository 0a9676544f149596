"""The report screens: usage shows the calls made before it (table and chart, by model and by user),
status shows each provider's keys and each account's token, and the audit log pages on the server."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.console.browser import open_console, sign_in
from tests.harness import World


def screen(page: Page, world: World, hash_: str, who: str = "root") -> None:
    open_console(page, world.url)
    sign_in(page, world.tokens[who])
    page.goto(f"{world.url}/console/#/{hash_}")


def chat(world: World, model: str) -> None:
    answer = requests.post(f"{world.url}/v1/chat/completions", timeout=30,
                           headers={"Authorization": f"Bearer {world.tokens['alice']}"},
                           json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def calls(world: World) -> int:
    """Alice's chats on gpt-4o, made before any usage page is opened."""
    for _ in range(3):
        chat(world, "gpt-4o")
    return 3


@pytest.mark.parametrize(("group", "key", "label"), [
    ("model", "gpt-4o", "gpt-4o"),
    ("user", "user:dev/alice", "user:dev/alice"),
])
def test_usage_shows_the_calls_made_before_it(page: Page, world: World, calls: int, group: str, key: str,
                                              label: str) -> None:
    screen(page, world, f"usage?group_by={group}")
    row = page.locator(f'[data-testid="usage-row"][data-key="{key}"]')
    expect(row).to_contain_text(f"{label}{calls}")          # the label cell, then the request count
    expect(page.get_by_test_id("usage-scope")).to_contain_text("Everyone")
    bar = page.locator(f'[data-testid="usage-bar"][data-label="{key}"]')
    expect(bar).to_contain_text(str(calls))
    page.get_by_test_id("usage-metric").select_option("total_tokens")
    expect(bar).not_to_contain_text(f"{key}{calls}")         # the chart now shows tokens, not requests


def test_a_user_sees_only_their_own_usage(page: Page, world: World, calls: int) -> None:
    screen(page, world, "usage?group_by=user", who="alice")
    expect(page.get_by_test_id("usage-scope")).to_contain_text("Your own usage")
    expect(page.get_by_test_id("usage-row")).to_have_count(1)
    expect(page.get_by_test_id("usage-row")).to_have_attribute("data-key", "user:dev/alice")


def test_status_table_shows_providers_and_accounts(page: Page, world: World) -> None:
    chat(world, "gpt-4o")       # the gateway has fetched dev's keys and used the emulator account
    screen(page, world, "status")
    table = page.get_by_test_id("status-table")
    expect(table).to_be_visible()
    provider = table.locator('[data-testid="status-row"][data-name="identity provider:dev"]')
    expect(provider).to_have_attribute("data-outcome", "pass")
    expect(provider).to_contain_text("keys")
    expect(table.locator('[data-testid="status-row"][data-name="account:emulator"]')).to_contain_text("api-key")


def test_the_audit_log_pages_on_the_server(page: Page, world: World) -> None:
    api = world.api("root")
    for i in range(3):
        assert api.put(f"workspaces/audited-{i}", {}).status_code == 201
    screen(page, world, "audit?limit=2")
    page.get_by_test_id("audit-principal").fill("user:dev/root")
    page.get_by_test_id("audit-apply").click()
    rows, status = page.get_by_test_id("audit-row"), page.get_by_test_id("page-status")
    keys: list[str] = []
    for number in range(1, 20):     # a page may hold fewer rows than its limit, even none, and still go on
        expect(status).to_contain_text(f"Page {number}" if number > 1 else "")
        expect(status).not_to_have_text("")
        assert rows.count() <= 2
        keys += [rows.nth(i).locator("td").nth(4).inner_text() for i in range(rows.count())]
        more = page.get_by_test_id("next-page")
        if more.is_hidden():
            break
        more.click()
    assert number > 2, "the trail fit on fewer pages than the test needs"
    assert [k for k in keys if k.startswith("audited-")] == ["audited-0", "audited-1", "audited-2"]
