"""A GATEWAY_ADMINS entry that can match no caller grants nothing: `status` (the CLI's and /manage/status)
names it and says why, and the gateway's log says so once per configuration it loads. Bindings cannot be
mistyped the same way: the store refuses them, naming the field."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from shared.config.schema import parse
from shared.config.snapshot import admin_problems
from tests.harness import ROOT, NewWorld, World
from tests.manage.conftest import wait_until

ROOT_ADMIN = "user:dev/root"
# entry -> why it matches no caller (None: it does match)
ENTRIES: dict[str, str | None] = {
    ROOT_ADMIN: None,
    "identity:developers": None,
    "user:okta/00u1abcd": "no identity provider named 'okta' is configured",
    "identity:developerz": "no external identity named 'developerz' is configured",
    "root": "is not a principal: 'root' must start with user: or identity:",
    "user:dev": "is not a principal: 'user:dev' must be user:<provider>/<unique id>",
    "team:ops": "is not a principal: 'team:ops' must start with user: or identity:",
}
BAD = {entry: why for entry, why in ENTRIES.items() if why is not None}


def expected(entry: str, why: str) -> str:
    verb = "" if why.startswith("is not") else "matches no caller: "
    return f"GATEWAY_ADMINS entry {entry!r} {verb}{why}"


@pytest.mark.parametrize(("entry", "why"), ENTRIES.items())
def test_each_admin_entry_is_checked_against_the_configuration(entry: str, why: str | None) -> None:
    config = parse({"identity_providers": [{"name": "dev", "jwks_uri": "https://idp.example.com/keys"}],
                    "external_identities": [{"name": "developers", "identity_provider": "dev",
                                             "claims": {"groups": "developers"}}]})
    assert admin_problems([entry], config) == (() if why is None else (expected(entry, why),))


@pytest.fixture(scope="module")
def world(new_world: NewWorld) -> Iterator[World]:
    with new_world(env={"GATEWAY_ADMINS": ",".join(ENTRIES)}) as world:
        yield world


def problem_lines(world: World, entry: str) -> list[str]:
    return [line for line in world.logs().splitlines() if f"GATEWAY_ADMINS entry {entry!r}" in line]


def test_status_names_every_admin_entry_that_matches_no_caller(world: World) -> None:
    report = world.api("root").get("status").json()
    assert report["problems"] == sorted(expected(entry, why) for entry, why in BAD.items())
    assert report["ok"] is False

    local = subprocess.run([sys.executable, "-m", "shared", "status"], cwd=ROOT, capture_output=True,
                           text=True, env={**os.environ, **world.env}, timeout=60)
    assert local.returncode == 1 and "gateway: DEGRADED" in local.stdout
    for entry, why in BAD.items():
        assert f"problem: {expected(entry, why)}" in local.stdout


def test_the_log_names_each_entry_once_per_configuration_loaded(world: World) -> None:
    admin = world.api("root")
    assert admin.get("status").status_code == 200
    assert all(len(problem_lines(world, entry)) == 1 for entry in BAD), world.logs()
    assert problem_lines(world, ROOT_ADMIN) == []

    # the missing provider is added: that entry matches from the next configuration on
    provider = {"jwks_uri": "https://okta.example.com/keys"}
    assert admin.put("identity-providers/okta", provider).status_code == 201
    assert wait_until(lambda: len(problem_lines(world, "root")) == 2), world.logs()
    assert len(problem_lines(world, "user:okta/00u1abcd")) == 1
    assert not any("okta" in p for p in admin.get("status").json()["problems"])
    assert admin.delete("identity-providers/okta").status_code == 204


@pytest.mark.parametrize("role", ["viewer", "editor", "manager"])
def test_attack_a_lesser_role_on_the_gateway_is_refused_even_from_an_admin(world: World, role: str) -> None:
    admin = world.api("root")
    answer = admin.put("collaborators", {"resource": "gateway:default", "principal": "user:dev/mona",
                                         "role": role})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "role"
    assert "only admin" in answer.json()["error"]["message"]
    bound = admin.get("collaborators", params={"resource": "gateway:default"}).json()["items"]
    assert all(b["principal"] != "user:dev/mona" for b in bound)


@pytest.mark.parametrize("principal", [entry for entry, why in BAD.items() if why.startswith("is not")])
def test_attack_a_malformed_principal_is_never_bound(world: World, principal: str) -> None:
    admin = world.api("root")
    binding = {"resource": "model:gpt-4o", "principal": principal, "role": "viewer"}
    answer = admin.put("collaborators", binding)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "principal"
    bound = admin.get("collaborators", params={"resource": "model:gpt-4o"}).json()["items"]
    assert all(b["principal"] != principal for b in bound)
