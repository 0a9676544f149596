"""Teams in the configuration file: validation naming the field, the access decision through a team, and
apply / diff / export round trips through the CLI on Azurite."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.access import Policy
from shared.config.schema import ConfigError, parse
from tests.harness import ROOT, Tables

DOC: dict[str, Any] = {
    "identity_providers": [{"name": "okta", "jwks_uri": "https://okta.example.com/keys"}],
    "external_identities": [{"name": "partner-app", "identity_provider": "okta", "claims": {"scp": "x"}}],
    "teams": [{"name": "partner-eng", "members": ["user:okta/00u1", "identity:partner-app"]},
              {"name": "empty"}],
    "accounts": [{"name": "a", "endpoint": "https://a.openai.azure.com",
                  "auth": {"type": "api-key", "key_env": "GATEWAY_SECRET_K"}}],
    "workspaces": [{"name": "research"}],
    "models": [{"name": "m", "workspace": "research", "targets": [{"account": "a", "deployment": "d"}]},
               {"name": "other", "targets": [{"account": "a", "deployment": "d"}]}],
    "collaborators": [
        {"resource": "workspace:research", "principal": "team:partner-eng", "role": "manager"},
        {"resource": "model:other", "principal": "user:okta/00u1", "role": "viewer"},
        {"resource": "team:partner-eng", "principal": "user:okta/lead", "role": "manager"},
    ],
}


def changed(path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@pytest.mark.parametrize(("path", "value", "field", "words"), [
    (["teams", 0, "members", 0], "team:empty", "teams[0].members[0]", "teams do not nest"),
    (["teams", 0, "members", 0], "identity:ghost", "teams[0].members", "unknown external identity"),
    (["teams", 0, "members", 0], "user:nowhere/1", "teams[0].members", "unknown identity provider"),
    (["teams", 0, "members", 1], "user:okta/00u1", "teams[0].members[1]", "listed twice"),
    (["teams", 0, "members"], "user:okta/00u1", "teams[0].members", "must be a list"),
    (["teams", 0, "leader"], "x", "teams[0].leader", "unknown field"),
    (["teams", 1, "name"], "partner-eng", "teams[1].name", "duplicate"),
    (["collaborators", 0, "principal"], "team:ghost", "collaborators[0].principal", "unknown team 'ghost'"),
    (["collaborators", 0, "principal"], "crew:x", "collaborators[0].principal", "user:, identity: or team:"),
    (["collaborators", 0, "resource"], "team:ghost", "collaborators[0].resource", "unknown resource"),
])
def test_an_invalid_team_names_the_field(path: list[Any], value: Any, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(changed(path, value))
    assert caught.value.field == field and words in caught.value.problem


@pytest.mark.parametrize(("where", "value"), [
    (["rate_limits"], [{"name": "r", "when": {"principals": {"in": ["team:partner-eng"]}},
                        "limits": [{"requests": 1, "per": "minute"}]}]),
])
def test_a_team_is_a_principal_of_bindings_only(where: list[Any], value: Any) -> None:
    """A rule naming a team would never match (rules see the caller's own principals): refused."""
    with pytest.raises(ConfigError) as caught:
        parse(changed(where, value))
    assert "must start with user: or identity:" in caught.value.problem


POLICY = Policy(parse(DOC), admins=frozenset())


@pytest.mark.parametrize(("principals", "resource", "role", "principal", "member"), [
    ({"user:okta/00u1"}, "model:m", "manager", "team:partner-eng", "user:okta/00u1"),
    ({"identity:partner-app"}, "model:m", "manager", "team:partner-eng", "identity:partner-app"),
    ({"user:okta/00u1"}, "model:other", "viewer", "user:okta/00u1", None),
    ({"user:okta/00u2"}, "model:m", None, None, None),
    ({"user:okta/lead"}, "model:m", None, None, None),      # managing a team is not being in it
    ({"user:okta/lead"}, "team:partner-eng", "manager", "user:okta/lead", None),
    ({"user:okta/00u1"}, "team:partner-eng", None, None, None),   # being in it is not managing it
])
def test_the_role_names_the_principal_that_gave_it(principals: set[str], resource: str, role: str | None,
                                                   principal: str | None, member: str | None) -> None:
    decision = POLICY.decide(principals, resource)
    assert (decision.role, decision.principal, decision.member) == (role, principal, member)


def cli(tables: Tables, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **tables.env}, timeout=60)


def test_apply_diff_export_round_trip_teams(tables: Tables, tmp_path: Path) -> None:
    source = tmp_path / "gateway.yaml"
    source.write_text(yaml.safe_dump(DOC), encoding="utf-8")
    applied = cli(tables, "apply", "-f", str(source))
    assert applied.returncode == 0, applied.stderr
    assert "+ team partner-eng" in applied.stdout
    assert "+ collaborator team:partner-eng on workspace:research (manager)" in applied.stdout

    exported = cli(tables, "export", "-o", str(tmp_path / "out.yaml"))
    assert exported.returncode == 0, exported.stderr
    out = yaml.safe_load((tmp_path / "out.yaml").read_text())
    assert out["teams"] == [{"name": "empty", "members": []},
                            {"name": "partner-eng", "members": ["identity:partner-app", "user:okta/00u1"]}]
    assert parse(out) == parse(DOC)

    fewer = changed(["teams", 0, "members"], ["identity:partner-app"])
    source.write_text(yaml.safe_dump(fewer), encoding="utf-8")
    diff = cli(tables, "diff", "-f", str(source))
    assert diff.returncode == 1 and "~ team partner-eng: members" in diff.stdout
    assert cli(tables, "apply", "-f", str(source)).returncode == 0
    assert tables.load().teams == parse(fewer).teams

    # a team still named by a binding cannot go; with the binding, it can
    gone = changed(["teams"], [DOC["teams"][1]])
    source.write_text(yaml.safe_dump(gone), encoding="utf-8")
    refused = cli(tables, "apply", "-f", str(source), "--prune")
    assert refused.returncode == 2 and "unknown team 'partner-eng'" in refused.stderr
    gone["collaborators"] = [c for c in DOC["collaborators"] if "partner-eng" not in c["principal"]
                             and "partner-eng" not in c["resource"]]
    source.write_text(yaml.safe_dump(gone), encoding="utf-8")
    pruned = cli(tables, "apply", "-f", str(source), "--prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "- team partner-eng" in pruned.stdout and tables.load() == parse(gone)
