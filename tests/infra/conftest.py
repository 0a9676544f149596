"""Offline checks of the infrastructure code: both stacks parsed, read and compared.

Runs in its own virtual environment (.venv-infra, see infra/infra.mk): checkov 3.3.30, its bundled HCL
parser (`hcl2`, from bc-python-hcl2) for Terraform, pycep-parser 0.7.1 for Bicep. Nothing here needs a
network, the Bicep compiler, Terraform providers or an Azure login.

This conftest is the only one loaded for tests/infra (infra.mk passes --confcutdir): the project's
tests/conftest.py needs the gateway's own dependencies, which this environment does not have.

Bicep expressions come out of pycep as JSON: a string literal and a bare identifier are both plain
strings ('gw' and `tablePrefix` alike), property access is {"operator": {"type": "property_accessor"}}
and a call is {"function": {...}}. `expression_text` turns those into short text such as
"storage.properties.primaryEndpoints.table" so that tests can compare them.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP_DIR = INFRA / "bicep"
TERRAFORM_DIR = INFRA / "terraform"
CHECKOV_DIR = INFRA / "checkov"

if str(ROOT) not in sys.path:  # shared/settings.py imports only the standard library
    sys.path.insert(0, str(ROOT))

# In the gateway's own environment (a plain `pytest` from the root) checkov and pycep are absent:
# these tests belong to `make test-infra`, which runs them in .venv-infra.
if importlib.util.find_spec("checkov") is None or importlib.util.find_spec("pycep") is None:
    collect_ignore_glob = ["test_*.py"]


# --------------------------------------------------------------------------------------------------
# Bicep


def parse_bicep(path: Path) -> dict[str, Any]:
    """The pycep document of one .bicep file; raises on any syntax error."""
    from pycep import BicepParser

    return BicepParser().parse(file_path=Path(path))


def bicep_files() -> list[Path]:
    return sorted(BICEP_DIR.rglob("*.bicep"))


def expression_text(value: Any) -> Any:
    """A pycep expression as compact text; literals (str, int, bool, list, dict) pass through."""
    if isinstance(value, dict):
        if "operator" in value and isinstance(value["operator"], dict):
            op = value["operator"]
            operands = op.get("operands", {})
            if op.get("type") == "property_accessor":
                return f"{expression_text(operands['operand_1'])}.{expression_text(operands['operand_2'])}"
            if op.get("type") == "index_accessor":
                return f"{expression_text(operands['operand_1'])}[{expression_text(operands['operand_2'])}]"
            parts = ", ".join(f"{k}={expression_text(v)}" for k, v in operands.items())
            return f"<{op.get('type')} {parts}>"
        if "function" in value and isinstance(value["function"], dict):
            fn = value["function"]
            args = ", ".join(
                str(expression_text(v)) for v in (fn.get("parameters") or {}).values() if v is not None
            )
            return f"{fn.get('type')}({args})"
        return {k: expression_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expression_text(v) for v in value]
    return value


def bicep_resource_type(resource: dict[str, Any]) -> str:
    # pycep keeps the api version on nested child resources ("...@v1.0"): drop it.
    return resource["type"].split("@", 1)[0]


def bicep_resource_body(resource: dict[str, Any]) -> tuple[dict[str, Any], Any, bool]:
    """(body, condition, is_loop) of a resource, unwrapping `if (...)` and `[for ...]` forms."""
    config = resource["config"]
    condition = None
    is_loop = False
    while isinstance(config, dict) and "config" in config and (
        "condition" in config or "loop_type" in config
    ):
        if config.get("condition") is not None:
            condition = config["condition"]
        if config.get("loop_type") is not None:
            is_loop = True
        config = config["config"]
    return config, condition, is_loop


@dataclass
class BicepStack:
    files: dict[str, dict[str, Any]]  # path relative to infra/bicep -> pycep document

    @property
    def main(self) -> dict[str, Any]:
        return self.files["main.bicep"]

    def resources(self, *, include_existing: bool = False) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(file, symbolic name, resource) of every resource declared (not `existing`) anywhere."""
        for name, doc in self.files.items():
            for symbol, resource in (doc.get("resources") or {}).items():
                if resource.get("existing") and not include_existing:
                    continue
                yield name, symbol, resource

    def resource(self, file: str, symbol: str) -> dict[str, Any]:
        return self.files[file]["resources"][symbol]

    def variable(self, file: str, name: str) -> Any:
        return self.files[file]["variables"][name]["value"]

    def parameter_default(self, file: str, name: str) -> Any:
        return self.files[file]["parameters"][name].get("default")


# --------------------------------------------------------------------------------------------------
# Terraform


def parse_hcl(path: Path) -> dict[str, Any]:
    """One .tf file with checkov's bundled HCL2 parser (python-hcl2 would clash with it)."""
    import hcl2

    with open(path, encoding="utf-8") as handle:
        return hcl2.load(handle)


def terraform_files() -> list[Path]:
    return sorted(TERRAFORM_DIR.glob("*.tf"))


def unwrap(value: Any) -> Any:
    """bc-python-hcl2 wraps every attribute in a one-element list."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


@dataclass
class TerraformStack:
    files: dict[str, dict[str, Any]]  # file name -> parsed document
    texts: dict[str, str] = field(default_factory=dict)

    def blocks(self, kind: str) -> Iterator[dict[str, Any]]:
        for doc in self.files.values():
            yield from doc.get(kind, [])

    def resources(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(type, name, body) of every resource."""
        for block in self.blocks("resource"):
            for rtype, named in block.items():
                for rname, body in named.items():
                    yield rtype, rname, body

    def resource(self, rtype: str, rname: str) -> dict[str, Any]:
        for t, n, body in self.resources():
            if (t, n) == (rtype, rname):
                return body
        raise KeyError(f"{rtype}.{rname}")

    def variables(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for block in self.blocks("variable"):
            found.update(block)
        return found

    def locals(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for block in self.blocks("locals"):
            found.update({k: unwrap(v) for k, v in block.items() if not k.startswith("__")})
        return found

    def outputs(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for block in self.blocks("output"):
            found.update(block)
        return found

    def variable_default(self, name: str) -> Any:
        return unwrap(self.variables()[name].get("default"))


# --------------------------------------------------------------------------------------------------
# The app settings of each stack


def bicep_app_settings(stack: BicepStack) -> dict[str, Any]:
    """name -> value expression of the function app's siteConfig.appSettings."""
    site = stack.resource("modules/functionapp.bicep", "site")
    body, _, _ = bicep_resource_body(site)
    entries = body["properties"]["siteConfig"]["appSettings"]
    settings: dict[str, Any] = {}
    for entry in entries:
        name = entry["name"]
        assert name not in settings, f"Bicep sets {name} twice"
        settings[name] = expression_text(entry["value"])
    return settings


def terraform_app_settings(stack: TerraformStack) -> dict[str, Any]:
    """name -> value of the function app's app_settings, plus what the provider writes from
    site_config (APPLICATIONINSIGHTS_CONNECTION_STRING)."""
    app = stack.resource("azurerm_function_app_flex_consumption", "gateway")
    settings = dict(unwrap(app["app_settings"]))
    site_config = unwrap(app["site_config"])
    if "application_insights_connection_string" in site_config:
        settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] = unwrap(
            site_config["application_insights_connection_string"]
        )
    return settings


# --------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def bicep() -> BicepStack:
    return BicepStack({str(p.relative_to(BICEP_DIR)): parse_bicep(p) for p in bicep_files()})


@pytest.fixture(scope="session")
def terraform() -> TerraformStack:
    files = terraform_files()
    return TerraformStack(
        {p.name: parse_hcl(p) for p in files},
        {p.name: p.read_text(encoding="utf-8") for p in files},
    )


@pytest.fixture
def bicep_copy(bicep: BicepStack) -> BicepStack:
    """A deep copy to mutate (drift sanity checks)."""
    return BicepStack(copy.deepcopy(bicep.files))


@pytest.fixture
def terraform_copy(terraform: TerraformStack) -> TerraformStack:
    return TerraformStack(copy.deepcopy(terraform.files), dict(terraform.texts))


@pytest.fixture(scope="session")
def helpers() -> SimpleNamespace:
    return SimpleNamespace(
        expression_text=expression_text,
        bicep_resource_type=bicep_resource_type,
        bicep_resource_body=bicep_resource_body,
        bicep_app_settings=bicep_app_settings,
        terraform_app_settings=terraform_app_settings,
        parse_bicep=parse_bicep,
        parse_hcl=parse_hcl,
        unwrap=unwrap,
        json=json,
        re=re,
    )
