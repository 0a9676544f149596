"""The Collaborators dialog and roles on the resource screens: an admin grants and revokes a role; a viewer
sees the resource but no button to change it, and the API refuses the change anyway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.console.browser import open_console, sign_in
from tests.harness import World
from tests.manage.conftest import wait_until

WORKSPACE = "workspace:research"


@pytest.fixture(scope="module", autouse=True)
def research(world: World) -> Iterator[None]:
    """A workspace alice (identity:developers) may only view."""
    api = world.api("root")
    assert api.put("workspaces/research", {}).status_code == 201
    assert api.put("collaborators", {"resource": WORKSPACE, "principal": "identity:developers",
                                     "role": "viewer"}).status_code == 201
    alice = world.api("alice", groups=["developers"])
    assert wait_until(lambda: alice.get("workspaces/research").status_code == 200)
    yield


def workspaces(page: Page, world: World, who: str) -> None:
    open_console(page, world.url)
    sign_in(page, world.tokens[who])
    page.get_by_test_id("nav-workspaces").click()
    page.locator('[data-testid="workspace-row"][data-name="research"]').click()
    expect(page.get_by_test_id("workspace-form")).to_be_visible()


def bindings(world: World) -> dict[str, str]:
    answer = world.api("root").get("collaborators", params={"resource": WORKSPACE})
    return {b["principal"]: b["role"] for b in answer.json()["items"]}


def test_grant_and_revoke_a_collaborator(page: Page, world: World) -> None:
    workspaces(page, world, "root")
    page.get_by_test_id("collaborators-open").click()
    developers = page.locator('[data-testid="collaborator-row"][data-principal="identity:developers"]')
    expect(developers).to_contain_text("viewer")

    page.get_by_test_id("collaborator-principal").fill("user:dev/bob")
    page.get_by_test_id("collaborator-role").select_option("editor")
    page.get_by_test_id("collaborator-add").click()
    bob = page.locator('[data-testid="collaborator-row"][data-principal="user:dev/bob"]')
    expect(bob).to_contain_text("editor")
    assert bindings(world) == {"identity:developers": "viewer", "user:dev/bob": "editor"}

    bob.get_by_test_id("collaborator-remove").click()
    expect(bob).to_have_count(0)
    assert bindings(world) == {"identity:developers": "viewer"}


def test_a_refused_grant_is_explained_in_the_dialog(page: Page, world: World) -> None:
    workspaces(page, world, "root")
    page.get_by_test_id("collaborators-open").click()
    page.get_by_test_id("collaborator-principal").fill("identity:nobody")
    page.get_by_test_id("collaborator-add").click()
    expect(page.get_by_test_id("collaborators-error")).to_contain_text("principal")
    assert "identity:nobody" not in bindings(world)


def test_a_viewer_sees_no_button_to_change_and_the_api_refuses_anyway(page: Page, world: World) -> None:
    workspaces(page, world, "alice")
    expect(page.get_by_test_id("workspace-name")).to_have_value("research")
    for hidden in ("workspace-save", "workspace-delete", "workspace-new"):
        expect(page.get_by_test_id(hidden)).to_be_hidden()
    expect(page.get_by_test_id("collaborators-open")).to_have_count(0)

    alice = world.api("alice", groups=["developers"])
    assert alice.put("workspaces/research", {}).status_code == 403
    assert alice.delete("workspaces/research").status_code == 403
    grant = {"resource": WORKSPACE, "principal": "user:dev/alice", "role": "manager"}
    assert alice.put("collaborators", grant).status_code == 403


@pytest.mark.parametrize(("who", "buttons"), [("root", 1), ("alice", 0)])
def test_the_models_screen_offers_collaborators_to_who_may_manage_them(page: Page, world: World, who: str,
                                                                         buttons: int) -> None:
    open_console(page, world.url)
    sign_in(page, world.tokens[who])
    page.get_by_test_id("nav-models").click()
    row = page.locator('[data-testid="configured-model-row"][data-name="gpt-4o"]')
    expect(row).to_be_visible()
    if not buttons:
        page.wait_for_load_state("networkidle")
        expect(row.get_by_test_id("collaborators-open")).to_have_count(0)
        return
    row.get_by_test_id("collaborators-open").click()
    expect(page.locator('[data-testid="collaborator-row"]').first).to_be_visible()
