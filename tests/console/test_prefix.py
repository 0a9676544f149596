"""The console behind a path prefix: a reverse proxy publishes the gateway under /ai/ on another host,
and every request the page makes (its files and its API calls) stays under that prefix."""

from __future__ import annotations

from playwright.sync_api import Page, Route, expect

from tests.console.browser import sign_in
from tests.harness import World

PUBLIC = "http://gateway.example/ai"


def proxy_under_prefix(page: Page, world: World) -> list[str]:
    """Requests to PUBLIC/... reach the gateway as /...; any other path on that host is refused, and
    answered and refused paths alike are recorded."""
    seen: list[str] = []

    def forward(route: Route) -> None:
        url = route.request.url
        seen.append(url)
        if not url.startswith(PUBLIC + "/"):
            route.fulfill(status=404, body="not under the prefix")
            return
        answer = route.fetch(url=world.url + url.removeprefix(PUBLIC), max_redirects=0)
        route.fulfill(response=answer)

    page.route("http://gateway.example/**", forward)
    return seen


def test_every_request_stays_under_the_prefix(page: Page, world: World) -> None:
    seen = proxy_under_prefix(page, world)
    page.goto(f"{PUBLIC}/console/")
    expect(page).to_have_url(f"{PUBLIC}/console/")
    sign_in(page, world.tokens["alice"])
    page.get_by_test_id("nav-models").click()
    row = page.locator('[data-testid="model-row"][data-name="gpt-4o"]')
    row.get_by_test_id("model-test").click()
    expect(row.get_by_test_id("model-test-result")).to_have_attribute("data-outcome", "pass")
    page.get_by_test_id("nav-playground").click()
    expect(page.get_by_test_id("playground-model")).not_to_have_value("")

    assert seen and all(url.startswith(PUBLIC + "/") for url in seen), seen
    paths = {url.removeprefix(PUBLIC).split("?")[0] for url in seen}
    assert {"/console/", "/v1/models", "/v1/chat/completions", "/manage/models"} <= paths
