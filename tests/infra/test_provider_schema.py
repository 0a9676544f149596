"""Every argument and nested block of the Terraform stack exists in its provider's schema, offline.

`terraform validate` needs the providers, which cannot be downloaded here. `make test-infra` instead
fetches the prebuilt CDK Terrain bindings of each provider (pinned with hashes in
infra/provider-schemas.txt) and keeps only their schemas as JSON (tests/infra/provider_schema.py). A
misspelt, removed or misplaced argument then fails here, as a copy of the stack broken on purpose shows.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "infra" / "terraform"
SCHEMAS = Path(os.environ.get("INFRA_PROVIDER_SCHEMAS", ROOT / ".venv-infra" / "provider-schemas"))
PROVIDERS = ("azurerm", "azuread", "azapi", "random")

META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle", "dynamic"}
LIFECYCLE = {"create_before_destroy", "prevent_destroy", "ignore_changes", "replace_triggered_by",
             "precondition", "postcondition"}
# Arguments the schema package's provider version (azurerm 4.59.0) has and azurerm 4.58, the stack's
# lower bound, does not: using one would break `terraform init` with 4.58.
NEWER_THAN_LOWER_BOUND = {("azurerm_user_assigned_identity", "isolation_scope")}


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict[str, Any]]:
    missing = [p for p in PROVIDERS if not (SCHEMAS / f"{p}.json").is_file()]
    if missing:
        pytest.fail(f"no provider schema for {missing} in {SCHEMAS}: run `make infra-venv`")
    return {p: json.loads((SCHEMAS / f"{p}.json").read_text(encoding="utf-8")) for p in PROVIDERS}


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if not k.startswith("__")}


def block_problems(where: str, body: dict[str, Any], schema: dict[str, Any], *,
                   top: bool = False) -> list[str]:
    """Names in one parsed block that its schema does not have, descending into nested blocks."""
    problems = []
    for name, value in _fields(body).items():
        if top and name in META_ARGUMENTS:
            if name == "lifecycle":
                for entry in value:
                    problems += [f"{where}: lifecycle.{k}" for k in _fields(entry) if k not in LIFECYCLE]
            if name == "dynamic":
                for entry in value:
                    for label, spec in entry.items():
                        problems += content_problems(f"{where}.dynamic.{label}", label, spec, schema)
            continue
        if name in schema["args"]:
            continue
        if name in schema["blocks"]:
            for entry in value if isinstance(value, list) else [value]:
                problems += block_problems(f"{where}.{name}", entry, schema["blocks"][name], top=True)
            continue
        problems.append(f"{where}: unknown argument or block {name!r}")
    return problems


def content_problems(where: str, label: str, spec: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    if label not in schema["blocks"]:
        return [f"{where}: unknown block {label!r}"]
    problems = []
    for content in spec.get("content", []):
        problems += block_problems(where, content, schema["blocks"][label], top=True)
    return problems


def stack_problems(documents: dict[str, dict[str, Any]], schemas: dict[str, dict[str, Any]]) -> list[str]:
    """Every resource, data source and provider block of the parsed .tf files against the schemas."""
    problems = []
    for file, document in documents.items():
        for kind in ("resource", "data"):
            for block in document.get(kind, []):
                for rtype, named in block.items():
                    provider = rtype.split("_", 1)[0]
                    schema = schemas[provider][kind].get(rtype)
                    if schema is None:
                        problems.append(f"{file}: {kind} {rtype} does not exist in {provider}")
                        continue
                    for rname, body in named.items():
                        where = f"{file}: {rtype}.{rname}"
                        problems += block_problems(where, body, schema, top=True)
                        problems += [f"{where}: {arg} is newer than the pinned lower bound"
                                     for t, arg in NEWER_THAN_LOWER_BOUND if t == rtype and arg in body]
        for block in document.get("provider", []):
            for name, body in block.items():
                problems += block_problems(f"{file}: provider {name}", body, schemas[name]["provider_config"])
    return problems


def test_the_schemas_are_the_pinned_provider_versions(schemas, terraform, helpers):
    (block,) = list(terraform.blocks("terraform"))
    providers = helpers.unwrap(block["required_providers"]).items()
    required = {name: helpers.unwrap(spec)["version"] for name, spec in providers}
    for name, schema in schemas.items():
        pin = re.fullmatch(r"~> (\d+)\.(\d+)", required[name])
        major, minor, _ = (int(x) for x in schema["version"].split("."))
        assert major == int(pin.group(1)) and minor >= int(pin.group(2)), (name, schema["version"], pin[0])
    assert schemas["azurerm"]["version"] == "4.59.0"  # the nearest build to the lower bound, 4.58


def test_every_argument_and_block_is_in_the_provider_schema(schemas, terraform):
    assert stack_problems(terraform.files, schemas) == []


def test_the_check_covers_every_resource(schemas, terraform):
    types = {t for t, _, _ in terraform.resources()}
    assert {"azurerm_function_app_flex_consumption", "azuread_application", "azapi_resource"} <= types
    for rtype in types:
        assert rtype in schemas[rtype.split("_", 1)[0]]["resource"], rtype


# (file, pattern, replacement, what the problem names)
BROKEN = [
    ("functionapp.tf", r"\bhttp_concurrency\b", "http_concurency", "http_concurency"),
    ("functionapp.tf", r"\bscm_minimum_tls_version\b", "scm_min_tls_version", "site_config: unknown"),
    ("functionapp.tf", r'dynamic "always_ready"', 'dynamic "ready"', "unknown block 'ready'"),
    ("functionapp.tf", r"\binstance_count\b", "count_of_instances", "count_of_instances"),
    ("monitoring.tf", r"\blocal_authentication_disabled\b", "local_auth_disabled", "local_auth_disabled"),
    ("identity.tf", r"\bparent_id\b", "identity_id", "identity_id"),
    ("entra.tf", r"\bapplication_id\b", "application_object_id", "application_object_id"),
    ("storage.tf", r"\bparent_id\b", "parent", "'parent'"),
    ("versions.tf", r"\bpurge_soft_delete_on_destroy\b", "purge_on_destroy", "purge_on_destroy"),
    ("storage.tf", r"\bcontainer_delete_retention_policy\b", "container_retention", "container_retention"),
    ("storage.tf", r"\bprecondition\b", "pre_condition", "lifecycle.pre_condition"),
    ("main.tf", r'data "azurerm_client_config"', 'data "azurerm_client_configuration"', "does not exist"),
    ("identity.tf", r'(resource "azurerm_user_assigned_identity" "gateway" \{)',
     r'\1\n  isolation_scope = "Regional"', "newer than the pinned lower bound"),
]


@pytest.mark.parametrize(("file", "pattern", "replacement", "expected"), BROKEN, ids=[b[2] for b in BROKEN])
def test_a_wrong_name_fails_the_check(schemas, terraform, file, pattern, replacement, expected):
    import hcl2

    text, count = re.subn(pattern, replacement, terraform.texts[file], count=1)
    assert count == 1, f"{pattern} not found in {file}: update this test"
    broken = {**terraform.files, file: hcl2.loads(text)}
    problems = stack_problems(broken, schemas)
    assert any(expected in p for p in problems), problems
