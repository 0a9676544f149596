"""The Terraform stack without providers: formatting (`terraform fmt -check` where terraform is
installed), every file parses, providers pinned to one major version, variables declared and used,
azd's variable file matches.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

TERRAFORM_DIR = Path(__file__).resolve().parents[2] / "infra" / "terraform"
CHECKOV_DIR = TERRAFORM_DIR.parent / "checkov"
FILES = sorted(TERRAFORM_DIR.glob("*.tf"))


def terraform_env() -> dict[str, str]:
    env = dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
    # An unreadable CLI configuration only prints a warning; keep the output clean.
    if env.get("TF_CLI_CONFIG_FILE") and not Path(env["TF_CLI_CONFIG_FILE"]).exists():
        env.pop("TF_CLI_CONFIG_FILE")
    return env


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_fmt_check():
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", "-no-color"],
        cwd=TERRAFORM_DIR, env=terraform_env(), capture_output=True, text=True, timeout=60, check=False,
    )
    hint = "run `terraform fmt -recursive infra/terraform`"
    assert result.returncode == 0, f"{hint}:\n{result.stdout}{result.stderr}"


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_fmt_check_catches_bad_formatting(tmp_path: Path):
    (tmp_path / "bad.tf").write_text('variable "x" {\ndefault="a"\n}\n', encoding="utf-8")
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-no-color"],
        cwd=tmp_path, env=terraform_env(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode != 0


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_terraform_file_parses(path: Path, helpers):
    assert helpers.parse_hcl(path), f"{path.name} is empty"


def test_providers_are_pinned_to_one_major_version(terraform, helpers):
    (block,) = list(terraform.blocks("terraform"))
    providers = helpers.unwrap(block["required_providers"])
    versions = {name: helpers.unwrap(spec)["version"] for name, spec in providers.items()}
    assert helpers.unwrap(providers["azurerm"])["source"] == "hashicorp/azurerm"
    azurerm = re.fullmatch(r"~> 4\.(\d+)", versions["azurerm"])
    assert azurerm, versions["azurerm"]
    # 4.58: the Flex Consumption resource's http_concurrency and maximum_instance_count up to 1000.
    assert int(azurerm.group(1)) >= 58, versions["azurerm"]
    assert re.fullmatch(r"~> 3\.\d+", versions["azuread"]), versions["azuread"]
    for name, version in versions.items():
        # "~> X.Y" allows X.Y and later minors, never X+1: one major version.
        assert re.fullmatch(r"~> \d+\.\d+", version), f"{name} is not pinned to one major version: {version}"


def test_the_provider_uses_entra_for_storage(terraform, helpers):
    providers = {name: body for block in terraform.blocks("provider") for name, body in block.items()}
    assert helpers.unwrap(providers["azurerm"]["storage_use_azuread"]) is True


def test_variables_are_declared_and_used(terraform):
    declared = set(terraform.variables())
    text = "\n".join(terraform.texts.values())
    used = set(re.findall(r"\bvar\.([A-Za-z0-9_]+)", text))
    assert used <= declared, f"undeclared variables: {sorted(used - declared)}"
    unused = declared - used
    assert not unused, f"unused variables: {sorted(unused)}"


def test_every_variable_is_described(terraform, helpers):
    for name, spec in terraform.variables().items():
        assert helpers.unwrap(spec.get("description")), f"variable {name} has no description"


def test_locals_are_declared(terraform):
    declared = set(terraform.locals())
    text = "\n".join(terraform.texts.values())
    used = set(re.findall(r"\blocal\.([A-Za-z0-9_]+)", text))
    assert used <= declared, f"undeclared locals: {sorted(used - declared)}"
    assert declared <= used, f"unused locals: {sorted(declared - used)}"


def test_references_point_at_declared_resources(terraform):
    declared = {(t, n) for t, n, _ in terraform.resources()}
    text = "\n".join(terraform.texts.values())
    reference = r"\b((?:azurerm|azuread|azapi|random)_[a-z_]+)\.([a-z_0-9]+)\b"
    for rtype, rname in set(re.findall(reference, text)):
        if rtype.startswith(("azurerm_client", "azuread_client")):
            continue  # data sources, checked below
        assert (rtype, rname) in declared, f"reference to undeclared {rtype}.{rname}"
    data = {(t, n) for block in terraform.blocks("data") for t, named in block.items() for n in named}
    for rtype, rname in set(re.findall(r"\bdata\.([a-z_]+)\.([a-z_0-9]+)", text)):
        assert (rtype, rname) in data, f"reference to undeclared data.{rtype}.{rname}"


def test_azd_variable_file_matches_the_variables(terraform):
    values = json.loads((TERRAFORM_DIR / "main.tfvars.json").read_text(encoding="utf-8"))
    variables = terraform.variables()
    assert set(values) <= set(variables)
    required = {n for n, spec in variables.items() if "default" not in spec}
    assert required <= set(values), "azd must fill every variable without a default"
    assert values["environment_name"] == "${AZURE_ENV_NAME}"
    assert values["location"] == "${AZURE_LOCATION}"
    assert values["principal_id"] == "${AZURE_PRINCIPAL_ID}"


def test_the_checkov_scan_variables_are_declared(terraform):
    text = (CHECKOV_DIR / "all-features.tfvars").read_text(encoding="utf-8")
    names = set(re.findall(r"^([a-z_0-9]+)\s*=", text, flags=re.MULTILINE))
    assert names <= set(terraform.variables())
    assert {"create_entra_app", "kubernetes_issuer", "principal_id", "always_ready_instance_count"} <= names


def test_no_key_or_secret_is_read_anywhere(terraform):
    text = "\n".join(terraform.texts.values())
    markers = (
        "primary_access_key", "primary_connection_string", "secondary_access_key", "instrumentation_key",
        "primary_shared_key", "client_secret", "azuread_application_password",
        "azuread_service_principal_password",
    )
    for marker in markers:
        assert marker not in text, marker


def test_resources_are_tagged_for_azd(terraform, helpers):
    assert terraform.locals()["tags"]["azd-env-name"] == "${var.environment_name}"
    group = terraform.resource("azurerm_resource_group", "main")
    assert helpers.unwrap(group["tags"]) == "${local.tags}"
