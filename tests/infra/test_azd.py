"""azure.yaml (azd) points at the Bicep stack, documents the Terraform one, and deploys the function app
the stacks tag; the infrastructure README documents every output and the steps after deployment."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def load_azure_yaml() -> dict:
    return yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))


def test_azd_provisions_the_bicep_stack_by_default():
    infra = load_azure_yaml()["infra"]
    assert infra["provider"] == "bicep"
    assert (ROOT / infra["path"] / f"{infra['module']}.bicep").is_file()
    assert (ROOT / infra["path"] / f"{infra['module']}.parameters.json").is_file()


def test_azd_can_provision_the_terraform_stack():
    text = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    assert "provider: terraform" in text and "infra/terraform" in text
    assert (ROOT / "infra" / "terraform" / "main.tfvars.json").is_file()


def test_azd_deploys_the_function_app_the_stacks_tag(bicep, terraform, helpers):
    services = load_azure_yaml()["services"]
    assert list(services) == ["api"]
    api = services["api"]
    assert api == {"project": ".", "language": "python", "host": "function"}
    assert (ROOT / api["project"] / "function_app.py").is_file()
    assert (ROOT / api["project"] / "host.json").is_file()
    site = bicep.resource("modules/functionapp.bicep", "site")
    assert helpers.bicep_resource_body(site)[0]["tags"]["function"]["parameters"]["arg_2"] == {
        "'azd-service-name'": "api"
    }
    app = terraform.resource("azurerm_function_app_flex_consumption", "gateway")
    assert "'azd-service-name': 'api'" in helpers.unwrap(app["tags"])


def test_the_deployment_package_leaves_infrastructure_out():
    ignored = (ROOT / ".funcignore").read_text(encoding="utf-8").split()
    for entry in ("infra/", "azure.yaml", "tests/", ".venv-infra/", "requirements-infra.txt"):
        assert entry in ignored, f".funcignore should list {entry}"


def test_the_readme_documents_every_output_and_the_next_steps(bicep):
    readme = (ROOT / "infra" / "README.md").read_text(encoding="utf-8")
    for output in bicep.main["outputs"]:
        assert output in readme, f"infra/README.md does not mention output {output}"
    assert "python -m shared apply -f gateway.yaml" in readme
    assert "GATEWAY_TABLES_ENDPOINT" in readme
    assert re.search(r"Application Developer|Application\.ReadWrite", readme), "directory rights"
    assert "azd up" in readme and "terraform apply" in readme
    assert "make test-infra" in readme


def azd_substitute(value: str, env: dict[str, str]) -> str:
    """What azd makes of `${NAME}` and `${NAME=default}` in a parameter file."""
    def one(match: re.Match) -> str:
        name, _, default = match.group(1).partition("=")
        return env.get(name, default)

    return re.sub(r"\$\{([A-Z_]+(?:=[^}]*)?)\}", one, value)


PRINCIPAL_TYPE_FILES = [
    ("infra/bicep/main.parameters.json", lambda doc: doc["parameters"]["principalType"]["value"]),
    ("infra/terraform/main.tfvars.json", lambda doc: doc["principal_type"]),
]


@pytest.mark.parametrize(("path", "read"), PRINCIPAL_TYPE_FILES, ids=[p for p, _ in PRINCIPAL_TYPE_FILES])
@pytest.mark.parametrize(("env", "expected"), [
    ({}, "User"),
    ({"AZURE_PRINCIPAL_TYPE": "ServicePrincipal"}, "ServicePrincipal"),
    ({"AZURE_PRINCIPAL_TYPE": "User"}, "User"),
])
def test_azd_passes_the_deployers_principal_type(path, read, env, expected, bicep, terraform, helpers):
    """A service principal (CI) deploys with AZURE_PRINCIPAL_TYPE=ServicePrincipal; a person needs nothing."""
    value = read(json.loads((ROOT / path).read_text(encoding="utf-8")))
    assert azd_substitute(value, env) == expected
    allowed = next(d["argument"] for d in bicep.main["parameters"]["principalType"]["decorators"]
                   if d["type"] == "allowed")
    assert expected in allowed
    validation = helpers.unwrap(terraform.variables()["principal_type"]["validation"])
    assert f"'{expected}'" in helpers.unwrap(validation["condition"])  # hcl2 writes single quotes


def test_the_substitution_reads_like_azd():
    assert azd_substitute("${A}", {"A": "x"}) == "x"
    assert azd_substitute("${A=d}", {}) == "d"
    assert azd_substitute("${A}", {}) == ""


@pytest.mark.parametrize(("env", "expected"), [
    ({}, ""),  # unset: the parameter's default, no secret (each instance draws its own key)
    ({"GATEWAY_SEALING_KEY": "c2VhbGluZw=="}, "c2VhbGluZw=="),
])
def test_azd_passes_the_sealing_key_from_its_environment(bicep, env, expected):
    """`azd env set GATEWAY_SEALING_KEY ...` reaches the secure parameter; nothing is written in the repo."""
    parameters = json.loads((ROOT / "infra/bicep/main.parameters.json").read_text(encoding="utf-8"))
    assert azd_substitute(parameters["parameters"]["sealingKey"]["value"], env) == expected
    declared = bicep.main["parameters"]["sealingKey"]
    assert {"type": "secure"} in declared["decorators"]
    assert declared["default"] == ""


def test_the_readme_documents_the_sealing_key():
    readme = (ROOT / "infra" / "README.md").read_text(encoding="utf-8")
    assert "azd env set GATEWAY_SEALING_KEY" in readme
    assert "random_bytes.sealing_key" in readme  # rotation with Terraform
    assert "Key Vault Secrets User" in readme
