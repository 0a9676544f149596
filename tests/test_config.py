"""The configuration file and the CLI that applies it, against Azurite."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.config.document import to_document
from shared.config.schema import ConfigError, parse
from tests.harness import ROOT, Tables

EXAMPLE: dict[str, Any] = {
    "identity_providers": [{"name": "okta-prod", "jwks_uri": "https://acme.okta.com/oauth2/default/v1/keys",
                            "issuer": "https://acme.okta.com/oauth2/default",
                            "audiences": ["api://ai-gateway"]}],
    "external_identities": [{"name": "partner-app", "identity_provider": "okta-prod",
                             "claims": {"scp": "gateway.invoke"}}],
    "teams": [{"name": "partner-eng", "members": ["identity:partner-app", "user:okta-prod/00u1abcd"]}],
    "accounts": [{"name": "aoai-eastus", "kind": "azure-openai",
                  "endpoint": "https://acme-eastus.openai.azure.com",
                  "auth": {"type": "workload-identity", "tenant_id": "00000000-0000-0000-0000-000000000000",
                           "client_id": "11111111-1111-1111-1111-111111111111",
                           "assertion": {"source": "managed-identity",
                                         "client_id": "22222222-2222-2222-2222-222222222222"}}}],
    "models": [{"name": "gpt-4o", "workspace": "research",
                "targets": [{"account": "aoai-eastus", "deployment": "gpt-4o-prod"}]}],
    "mcp_servers": [],
    "agents": [],
    "workspaces": [{"name": "research"}],
    "rate_limits": [],
    "budgets": [],
    "prices": [],
    "collaborators": [
        {"resource": "model:gpt-4o", "principal": "identity:partner-app", "role": "viewer"},
        {"resource": "workspace:research", "principal": "user:okta-prod/00u1abcd", "role": "manager"},
        {"resource": "model:gpt-4o", "principal": "user:okta-prod/system:serviceaccount:ai/gw#1|ü",
         "role": "editor"},
    ],
}


def mutate(path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(EXAMPLE)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(("path", "value", "field"), [
    (["identity_providers", 0, "name"], "okta prod", "identity_providers[0].name"),
    (["identity_providers", 0, "jwks_uri"], KeyError, "identity_providers[0].jwks_uri"),
    (["identity_providers", 0, "jwks_uri"], "ftp://x/keys", "identity_providers[0].jwks_uri"),
    (["identity_providers", 0, "audiences"], 5, "identity_providers[0].audiences"),
    (["identity_providers", 0, "colour"], "red", "identity_providers[0].colour"),
    (["external_identities", 0, "identity_provider"], "nope", "external_identities[0].identity_provider"),
    (["accounts", 0, "kind"], "openai", "accounts[0].kind"),
    (["accounts", 0, "auth", "type"], "password", "accounts[0].auth.type"),
    (["accounts", 0, "auth", "tenant_id"], KeyError, "accounts[0].auth.tenant_id"),
    (["accounts", 0, "auth", "assertion", "source"], "magic", "accounts[0].auth.assertion.source"),
    (["models", 0, "targets"], [], "models[0].targets"),
    (["models", 0, "targets", 0, "account"], "ghost", "models[0].targets[0].account"),
    (["models", 0, "workspace"], "elsewhere", "models[0].workspace"),
    (["collaborators", 0, "role"], "owner", "collaborators[0].role"),
    (["collaborators", 0, "role"], "admin", "collaborators[0].role"),
    (["collaborators", 0, "resource"], "model:ghost", "collaborators[0].resource"),
    (["collaborators", 0, "principal"], "bob", "collaborators[0].principal"),
    (["collaborators", 0, "principal"], "identity:partner-ap", "collaborators[0].principal"),   # typo
    (["collaborators", 0, "principal"], "user:okta-dev/00u1abcd", "collaborators[0].principal"),
    (["collaborators", 0, "resource"], "gateway:default", "collaborators[0].role"),   # only admin there
    (["collaborators", 0, "resource"], "account:ghost", "collaborators[0].resource"),
    (["collaborators", 0, "resource"], "team:x", "collaborators[0].resource"),
    (["collaborators", 1], dict(EXAMPLE["collaborators"][0]), "collaborators[1]"),
    (["models"], "gpt-4o", "models"),
    (["surprise"], [], "surprise"),
])
def test_invalid_documents_name_the_field(path: list[Any], value: Any, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(mutate(path, value))
    assert caught.value.field == field


def test_a_binding_on_an_account_is_a_binding_on_a_resource() -> None:
    doc = mutate(["collaborators"], [*EXAMPLE["collaborators"], {
        "resource": "account:aoai-eastus", "principal": "identity:partner-app", "role": "viewer"}])
    assert ("account:aoai-eastus", "viewer") in {(c.resource, c.role) for c in parse(doc).collaborators}


def test_every_kind_is_known_to_every_layer() -> None:
    """One table of kinds: the file format, the store, access, /manage and its document agree."""
    from shared.config.kinds import KINDS, NAMED, RESOURCE_RE, STORED, split_resource
    from shared.config.model import Config
    from shared.config.plan import ORDER
    from shared.config.schema import PARSERS
    from shared.config.store import SECTION_TABLE
    from shared.manage.openapi import document
    from shared.manage.resources import SCHEMAS

    sections = [k.section for k in STORED]
    assert list(SECTION_TABLE) == sections == list(ORDER[:-1])
    assert set(PARSERS) == set(SCHEMAS) == set(sections)
    assert set(Config.__dataclass_fields__) == {*sections, "collaborators"}
    assert {k.prefix for k in KINDS} >= {"model", "mcp-server", "agent", "workspace", "account", "gateway"}
    for kind in NAMED:
        assert RESOURCE_RE.match(f"{kind.prefix}:x") and split_resource(f"{kind.prefix}:x") == (kind, "x")
        assert f"/manage/{kind.path}/{{name}}" in document()["paths"]
    assert document()["components"]["schemas"]["Binding"]["properties"]["resource"]["pattern"].count("|") \
        == len(NAMED)


def test_export_of_a_parsed_file_is_the_file() -> None:
    assert to_document(parse(EXAMPLE)) == {**EXAMPLE, "collaborators": sorted(
        EXAMPLE["collaborators"], key=lambda c: (c["resource"], c["principal"]))}


def cli(tables: Tables, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **tables.env}, timeout=60)


def test_apply_then_export_gives_back_the_configuration(tables: Tables, tmp_path: Path) -> None:
    source = tmp_path / "gateway.yaml"
    source.write_text(yaml.safe_dump(EXAMPLE), encoding="utf-8")

    diff = cli(tables, "diff", "-f", str(source))
    assert diff.returncode == 1, diff.stderr           # something would change
    assert "+ model gpt-4o" in diff.stdout and "10 change(s) to apply" not in diff.stdout
    assert tables.load().models == ()          # diff changed nothing

    applied = cli(tables, "apply", "-f", str(source))
    assert applied.returncode == 0, applied.stderr
    assert "+ collaborator identity:partner-app on model:gpt-4o (viewer)" in applied.stdout

    exported = cli(tables, "export", "-o", str(tmp_path / "out.yaml"))
    assert exported.returncode == 0, exported.stderr
    assert parse(yaml.safe_load((tmp_path / "out.yaml").read_text())) == parse(EXAMPLE)
    assert cli(tables, "diff", "-f", str(tmp_path / "out.yaml")).stdout.strip() == "no changes"

    smaller = mutate(["collaborators"], EXAMPLE["collaborators"][:1])
    smaller["models"][0]["targets"][0]["deployment"] = "gpt-4o-next"
    source.write_text(yaml.safe_dump(smaller), encoding="utf-8")
    applied = cli(tables, "apply", "-f", str(source), "--prune")
    assert '~ model gpt-4o: targets[0].deployment: "gpt-4o-prod" -> "gpt-4o-next"' in applied.stdout
    assert "- collaborator user:okta-prod/00u1abcd on workspace:research (manager)" in applied.stdout
    assert tables.load() == parse(smaller)


def test_an_invalid_file_changes_nothing(tables: Tables, tmp_path: Path) -> None:
    tables.apply(EXAMPLE)
    before = tables.load()
    bad = mutate(["models", 0, "targets", 0, "account"], "ghost")
    bad["collaborators"] = []                    # would delete bindings, if anything were written
    source = tmp_path / "bad.yaml"
    source.write_text(yaml.safe_dump(bad), encoding="utf-8")
    result = cli(tables, "apply", "-f", str(source))
    assert result.returncode == 2
    assert "models[0].targets[0].account: unknown account 'ghost'" in result.stderr
    assert "nothing was changed" in result.stderr
    assert tables.load() == before

    source.write_text("identity_providers: [\n", encoding="utf-8")
    result = cli(tables, "apply", "-f", str(source))
    assert result.returncode == 2 and "is not valid YAML" in result.stderr
    assert tables.load() == before


def test_missing_table_settings_are_named(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    result = subprocess.run([sys.executable, "-m", "shared", "export"], cwd=tmp_path, capture_output=True,
                            text=True, env={**env, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert result.returncode == 2
    assert "GATEWAY_TABLES_CONNECTION" in result.stderr


def test_roles_left_by_a_crashed_writer_are_void_when_the_name_is_created_again(tables: Tables) -> None:
    """A process that dies between writing a grant and checking its resource can leave a binding set
    on a resource that does not exist; a resource created under that name later starts with no roles."""
    import asyncio

    from shared.config.entities import Write, pack
    from shared.config.store import ConfigStore
    from shared.settings import load

    tables.apply(EXAMPLE)
    model = {"name": "reborn", "targets": [{"account": "aoai-eastus", "deployment": "d"}]}

    async def work() -> list[tuple[str, str]]:
        store = ConfigStore.from_settings(load(tables.env))
        try:
            await store.table("bindings").replace({"PartitionKey": "b", "RowKey": "model:reborn",
                                                   **pack({"identity:partner-app": "manager"})})
            await store.write([Write("models", "reborn", model)])
            config, _ = await store.load()
        finally:
            await store.aclose()
        return [(c.principal, c.role) for c in config.collaborators if c.resource == "model:reborn"]

    assert asyncio.run(work()) == []
