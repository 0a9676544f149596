"""Federated-credential names are valid for any input: Entra takes only ^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$.

The Kubernetes credential's name is derived from the namespace and service account the deployer gives.
Terraform's expression runs for real in `terraform console` (no provider needed) on awkward inputs;
Bicep has no compiler here, so its expression is read from the parse and evaluated by the few functions
it may use (an unknown function fails the test: the expression changed shape).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

TERRAFORM_DIR = Path(__file__).resolve().parents[2] / "infra" / "terraform"
NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$")

# (namespace, service account): Kubernetes names are DNS labels / subdomains of up to 63 / 253 characters.
KUBERNETES_NAMES = [
    ("default", "gateway"),
    ("ai", "gateway.v2.example"),
    ("a", "b"),
    ("n" * 63, "s" * 253),
    ("team-1", "sa.with.many.dots." + "x" * 100),
]
# Not Kubernetes names, yet Terraform's expression must still give a valid name.
AWKWARD = [("ns", "sa with spaces/and:colons@x"), ("ÄÖ", "日本"), ("", "")]


def bicep_eval(value: Any, params: dict[str, str]) -> str:
    """Evaluate the pycep expression of a string built from parameters with take/replace/toLower."""
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)\}", lambda m: params[m.group(1)], value)
    function = value["function"]
    args = function["parameters"]
    if function["type"] == "take":
        return bicep_eval(args["original_value"], params)[: int(args["number_to_take"])]
    if function["type"] == "replace":
        return bicep_eval(args["original_string"], params).replace(args["old_string"], args["new_string"])
    if function["type"] == "to_lower":
        return bicep_eval(args["string"], params).lower()
    raise AssertionError(f"unexpected function {function['type']} in the credential name")


def bicep_names(bicep, helpers, cases) -> list[str]:
    body, _, _ = helpers.bicep_resource_body(bicep.resource("modules/identity.bicep", "kubernetes"))
    assert body["name"] == "kubernetesCredentialName"
    expression = bicep.variable("modules/identity.bicep", "kubernetesCredentialName")
    return [bicep_eval(expression, {"kubernetesNamespace": ns, "kubernetesServiceAccount": sa})
            for ns, sa in cases]


def terraform_names(tmp_path: Path, cases) -> list[str]:
    """Run identity.tf's own expression in `terraform console` for every case at once."""
    text = (TERRAFORM_DIR / "identity.tf").read_text(encoding="utf-8")
    expression = re.search(r"^\s*kubernetes_credential_name\s*=\s*(.+)$", text, re.MULTILINE).group(1)
    per_case = expression.replace("var.kubernetes_namespace", "c[0]")
    per_case = per_case.replace("var.kubernetes_service_account", "c[1]")
    (tmp_path / "main.tf").write_text(
        'variable "cases" {\n  type = list(list(string))\n}\n'
        f"locals {{\n  names = [for c in var.cases : {per_case}]\n}}\n",
        encoding="utf-8",
    )
    (tmp_path / "cases.auto.tfvars.json").write_text(json.dumps({"cases": [list(c) for c in cases]}))
    env = {k: v for k, v in os.environ.items() if k != "TF_CLI_CONFIG_FILE"}
    env.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1")
    result = subprocess.run(
        ["terraform", "console"], input="jsonencode(local.names)\n", cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(json.loads(result.stdout.strip()))


def test_bicep_gives_valid_names_for_kubernetes_names(bicep, helpers):
    for (ns, sa), name in zip(KUBERNETES_NAMES, bicep_names(bicep, helpers, KUBERNETES_NAMES), strict=True):
        assert NAME.match(name), (ns, sa, name)
    assert bicep_names(bicep, helpers, [("default", "gateway")]) == ["kubernetes-default-gateway"]


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_gives_valid_names_and_the_same_as_bicep(tmp_path, bicep, helpers):
    names = terraform_names(tmp_path, KUBERNETES_NAMES + AWKWARD)
    for case, name in zip(KUBERNETES_NAMES + AWKWARD, names, strict=True):
        assert NAME.match(name), (case, name)
    assert names[: len(KUBERNETES_NAMES)] == bicep_names(bicep, helpers, KUBERNETES_NAMES)


def test_the_unsanitised_name_would_fail():
    """The check can fail: the name as it used to be written breaks the rule on these inputs."""
    raw = [f"kubernetes-{ns}-{sa}" for ns, sa in KUBERNETES_NAMES + AWKWARD]
    assert not all(NAME.match(name) for name in raw)


@pytest.mark.parametrize("name", ["managed-identity"])
def test_the_entra_app_credential_names_are_valid(bicep, terraform, helpers, name):
    fic = terraform.resource("azuread_application_federated_identity_credential", "managed_identity")
    assert helpers.unwrap(fic["display_name"]) == name
    credential = bicep.resource("modules/entra.bicep", "app__managedIdentityCredential")
    body, _, _ = helpers.bicep_resource_body(credential)
    assert body["name"] == "${app.uniqueName}/" + name
    assert NAME.match(name)
