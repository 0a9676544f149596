"""The Bicep stack without a Bicep compiler: every file parses (pycep-parser 0.7.1), modules are local
and called with the parameters they declare, parameters and variables are used, the Microsoft Graph
extension is declared in bicepconfig.json, and azd's parameter file matches main.bicep.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

BICEP_DIR = Path(__file__).resolve().parents[2] / "infra" / "bicep"
FILES = sorted(BICEP_DIR.rglob("*.bicep"))


def parse_bicep(path: Path) -> dict:
    from pycep import BicepParser

    return BicepParser().parse(file_path=path)


def test_the_stack_has_a_main_and_modules():
    names = {str(p.relative_to(BICEP_DIR)) for p in FILES}
    assert "main.bicep" in names
    assert {n for n in names if n.startswith("modules/")}, "no local modules"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(BICEP_DIR)))
def test_every_bicep_file_parses(path: Path):
    document = parse_bicep(path)
    assert document.get("resources") or document.get("modules"), f"{path.name} declares nothing"


def test_a_syntax_error_fails_the_parse(tmp_path: Path):
    broken = tmp_path / "broken.bicep"
    good = (BICEP_DIR / "modules" / "monitoring.bicep").read_text(encoding="utf-8")
    broken.write_text(good.replace("properties: {", "properties: {{", 1), encoding="utf-8")
    with pytest.raises(Exception):  # noqa: B017  (lark raises several kinds)
        parse_bicep(broken)


def test_modules_are_local_files_not_registry_modules(bicep):
    for name, document in bicep.files.items():
        for symbol, module in (document.get("modules") or {}).items():
            assert module["type"] == "local", f"{name}: module {symbol} comes from a registry"
            target = (BICEP_DIR / Path(name).parent / module["detail"]["path"]).resolve()
            assert target.is_file(), f"{name}: module {symbol} -> {target} is missing"
    text = "\n".join(p.read_text(encoding="utf-8") for p in FILES)
    assert "br/public:" not in text and "br:" not in text, "registry modules hide resources from checkov"


def _module_calls(bicep):
    for name, document in bicep.files.items():
        for symbol, module in (document.get("modules") or {}).items():
            target = str((Path(name).parent / module["detail"]["path"]).as_posix())
            body = module["config"]
            while "config" in body and ("condition" in body or "loop_type" in body):
                body = body["config"]
            yield name, symbol, target, body.get("params") or {}


def test_modules_get_exactly_the_parameters_they_declare(bicep):
    for caller, symbol, target, passed in _module_calls(bicep):
        declared = bicep.files[target].get("parameters") or {}
        unknown = set(passed) - set(declared)
        assert not unknown, f"{caller}: module {symbol} passes undeclared parameters {sorted(unknown)}"
        required = {n for n, p in declared.items() if "default" not in p}
        missing = required - set(passed)
        assert not missing, f"{caller}: module {symbol} misses required parameters {sorted(missing)}"


def test_module_outputs_used_by_main_exist(bicep):
    text = (BICEP_DIR / "main.bicep").read_text(encoding="utf-8")
    modules = {symbol: target for caller, symbol, target, _ in _module_calls(bicep) if caller == "main.bicep"}
    for symbol, output in re.findall(r"\b(\w+)\.outputs\.(\w+)", text):
        assert symbol in modules, f"main.bicep reads outputs of unknown module {symbol}"
        outputs = bicep.files[modules[symbol]].get("outputs") or {}
        assert output in outputs, f"{modules[symbol]} has no output {output}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(BICEP_DIR)))
def test_parameters_and_variables_are_used(path: Path):
    """What the Bicep linter's no-unused-params / no-unused-vars would say."""
    document = parse_bicep(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    # Drop comments and the declared name itself (a variable may well be used on another var line).
    code = "\n".join(
        re.sub(r"^(\s*(?:param|var)\s+)\w+", r"\1", line)
        for line in lines
        if not line.strip().startswith(("//", "@"))
    )
    for kind in ("parameters", "variables"):
        for name in document.get(kind) or {}:
            used = re.search(rf"\b{re.escape(name)}\b", code)
            assert used, f"{path.name}: {kind[:-1]} {name} is never used"


def test_outputs_do_not_leak_secrets(bicep):
    for name, document in bicep.files.items():
        for output, spec in (document.get("outputs") or {}).items():
            text = json.dumps(spec).lower()
            assert "listkeys" not in text and "connectionstring" not in text, f"{name}: output {output}"


def test_the_graph_extension_is_declared_in_bicepconfig(bicep):
    config = json.loads((BICEP_DIR / "bicepconfig.json").read_text(encoding="utf-8"))
    aliases = config.get("extensions", {})
    used = {ext for document in bicep.files.values() for ext in (document.get("extensions") or {})}
    assert used, "no file uses the Microsoft Graph extension"
    for extension in used:
        assert extension in aliases, f"extension {extension} has no alias in bicepconfig.json"
    graph = aliases["microsoftGraphV1"]
    assert re.fullmatch(r"br:mcr\.microsoft\.com/bicep/extensions/microsoftgraph/v1\.0:\d+\.\d+\.\d+", graph)


def test_graph_resources_live_only_in_the_optional_module(bicep):
    for name, _, resource in bicep.resources():
        if resource["type"].startswith("Microsoft.Graph/"):
            assert name == "modules/entra.bicep", f"{name} creates directory objects"


def test_azd_parameters_match_main(bicep):
    parameters = json.loads((BICEP_DIR / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    declared = bicep.main["parameters"]
    assert set(parameters) <= set(declared)
    required = {n for n, p in declared.items() if "default" not in p}
    assert required <= set(parameters), "azd must fill every parameter without a default"
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert parameters["location"]["value"] == "${AZURE_LOCATION}"
    assert parameters["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"


def test_main_targets_the_subscription_and_tags_the_environment(bicep):
    assert bicep.main["globals"]["scope"]["value"] == "subscription"
    tags = bicep.variable("main.bicep", "tags")
    assert tags["'azd-env-name'"] == "environmentName"  # pycep keeps the quotes of a quoted key
