"""The security baseline (infra/README.md), enforced by checkov 3.3.30 on both stacks, offline.

- checkov must parse every file: it exits 0 on a Bicep file it cannot parse, so `parsing_errors` of its
  JSON report is read, and a deliberately broken file proves the detection works.
- Every failed check must be listed, for that resource, in infra/checkov/skips.yaml with a reason, and
  every entry there must still match a failure.
- The custom policies (infra/checkov/policies, for what checkov has no check of its own, such as
  azurerm_function_app_flex_consumption) must each run, pass on the stacks, and fail on a copy of the
  stacks broken on purpose.

The Terraform scan applies infra/checkov/all-features.tfvars: checkov drops resources whose count is 0,
so without it the optional Entra app and Kubernetes credential would never be scanned.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CHECKOV_DIR = INFRA / "checkov"
POLICIES = CHECKOV_DIR / "policies"
TFVARS = CHECKOV_DIR / "all-features.tfvars"


def load_policies() -> dict[str, str]:
    """policy id -> framework ("terraform" or "bicep"), from the resource types it targets."""
    policies = {}
    for path in sorted(POLICIES.glob("*.yaml")):
        policy = yaml.safe_load(path.read_text(encoding="utf-8"))
        text = json.dumps(policy["definition"])
        framework = "terraform" if re.search(r'"azurerm_|"azuread_', text) else "bicep"
        assert policy["metadata"]["id"] not in policies, f"duplicate policy id in {path.name}"
        policies[policy["metadata"]["id"]] = framework
    return policies


# Four checkov runs side by side take ~20 s here; leave room on a slower machine.
pytestmark = pytest.mark.timeout(600)

POLICY_FRAMEWORKS = load_policies()
SKIPS = yaml.safe_load((CHECKOV_DIR / "skips.yaml").read_text(encoding="utf-8"))["skips"]


# ---- running checkov ------------------------------------------------------------------------------

# Each mutation breaks exactly what one custom policy checks: (file, pattern, replacement, policy).
TERRAFORM_MUTATIONS = [
    ("functionapp.tf", r"https_only\s*=\s*true", "https_only = false", "CKV2_GW_1"),
    ("functionapp.tf", r"webdeploy_publish_basic_authentication_enabled\s*=\s*false",
     "webdeploy_publish_basic_authentication_enabled = true", "CKV2_GW_2"),
    ("functionapp.tf", r'(?<!scm_)minimum_tls_version\s*=\s*"1.2"', 'minimum_tls_version = "1.0"',
     "CKV2_GW_3"),
    ("functionapp.tf", r'storage_authentication_type\s*=\s*"UserAssignedIdentity"',
     'storage_authentication_type = "StorageAccountConnectionString"', "CKV2_GW_4"),
    ("functionapp.tf", r'(?s)resource "azurerm_monitor_diagnostic_setting" "function_app" \{.*?\n\}\n', "",
     "CKV2_GW_5"),
    ("functionapp.tf", r'PYTHON_ENABLE_INIT_INDEXING\s*=\s*"1"',
     'PYTHON_ENABLE_INIT_INDEXING = "1"\n    FUNCTIONS_WORKER_RUNTIME = "python"', "CKV2_GW_6"),
    ("functionapp.tf", r"remote_debugging_enabled\s*=\s*false", "remote_debugging_enabled = true",
     "CKV2_GW_7"),
    ("monitoring.tf", r"local_authentication_disabled\s*=\s*true", "local_authentication_disabled = false",
     "CKV2_GW_10"),
    ("monitoring.tf", r"local_authentication_enabled\s*=\s*false", "local_authentication_enabled = true",
     "CKV2_GW_11"),
    ("openai.tf", r"\n\s*custom_subdomain_name\s*=.*", "", "CKV2_GW_12"),
    ("openai.tf", r'(?s)resource "azurerm_monitor_diagnostic_setting" "openai" \{.*?\n\}\n', "",
     "CKV2_GW_13"),
    ("keyvault.tf", r'(?s)resource "azurerm_monitor_diagnostic_setting" "key_vault" \{.*?\n\}\n', "",
     "CKV2_GW_13"),
    ("keyvault.tf", r"rbac_authorization_enabled\s*=\s*true", "rbac_authorization_enabled = false",
     "CKV2_GW_14"),
]
BICEP_MUTATIONS = [
    ("modules/functionapp.bicep", r"type: 'UserAssignedIdentity'", "type: 'SystemAssignedIdentity'",
     "CKV2_GW_21"),
    ("modules/functionapp.bicep", r"allow: false", "allow: true", "CKV2_GW_22"),
    ("modules/storage.bicep", r"allowSharedKeyAccess: false", "allowSharedKeyAccess: true", "CKV2_GW_23"),
    ("modules/monitoring.bicep", r"DisableLocalAuth: true", "DisableLocalAuth: false", "CKV2_GW_24"),
    ("modules/monitoring.bicep", r"disableLocalAuth: true", "disableLocalAuth: false", "CKV2_GW_25"),
    ("modules/openai.bicep", r"\n\s*customSubDomainName: name", "", "CKV2_GW_26"),
    ("modules/functionapp.bicep", r"categoryGroup: 'allLogs'", "category: 'FunctionAppLogs'", "CKV2_GW_27"),
    ("modules/keyvault.bicep", r"enableRbacAuthorization: true", "enableRbacAuthorization: false",
     "CKV2_GW_28"),
]
BROKEN_BICEP = "modules/broken.bicep"


def mutated_copy(source: Path, target: Path, mutations: list[tuple[str, str, str, str]]) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    for file, pattern, replacement, policy in mutations:
        path = target / file
        text = path.read_text(encoding="utf-8")
        changed, count = re.subn(pattern, replacement, text)
        assert count, f"mutation for {policy} no longer matches {file}: update test_checkov.py"
        path.write_text(changed, encoding="utf-8")
    return target


def checkov_command(directory: Path, framework: str, *extra: str) -> list[str]:
    executable = Path(sys.executable).with_name("checkov")
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "checkov.main"]
    return [
        *command, "-d", str(directory), "--framework", framework, "--skip-download", "-o", "json",
        "--external-checks-dir", str(POLICIES), *extra,
    ]


def run_all(commands: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Run the scans side by side; each report as checkov's JSON (one framework per run)."""
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", LOG_LEVEL="ERROR", PYTHONWARNINGS="ignore")
    running = {
        name: subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, command in commands.items()
    }
    reports = {}
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode in (0, 1), f"checkov ({name}) crashed:\n{stderr[-3000:]}"
        try:
            report = json.loads(stdout)
        except ValueError:
            pytest.fail(f"checkov ({name}) did not print JSON:\n{stdout[-2000:]}\n{stderr[-2000:]}")
        if isinstance(report, list):  # several report types: keep the IaC one
            report = next(r for r in report if r.get("check_type") in ("terraform", "bicep"))
        if "results" not in report:  # nothing scanned at all: an empty summary
            empty = {"failed_checks": [], "passed_checks": [], "parsing_errors": []}
            report = {"summary": report, "results": empty}
        reports[name] = report
    return reports


@pytest.fixture(scope="session")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    work = tmp_path_factory.mktemp("checkov")
    broken_tf = mutated_copy(INFRA / "terraform", work / "terraform", TERRAFORM_MUTATIONS)
    broken_bicep = mutated_copy(INFRA / "bicep", work / "bicep", BICEP_MUTATIONS)
    unclosed = "param x string\nresource r 'A/b@2024-01-01' = {\n"
    (broken_bicep / BROKEN_BICEP).write_text(unclosed, encoding="utf-8")
    custom_tf = ",".join(p for p, f in POLICY_FRAMEWORKS.items() if f == "terraform")
    custom_bicep = ",".join(p for p, f in POLICY_FRAMEWORKS.items() if f == "bicep")
    return run_all({
        "bicep": checkov_command(INFRA / "bicep", "bicep"),
        "terraform": checkov_command(INFRA / "terraform", "terraform", "--var-file", str(TFVARS)),
        "broken bicep": checkov_command(broken_bicep, "bicep", "--check", custom_bicep),
        "broken terraform": checkov_command(
            broken_tf, "terraform", "--var-file", str(TFVARS), "--check", custom_tf
        ),
    })


def resource_name(record: dict[str, Any]) -> str:
    return re.sub(r"\[[^\]]*\]", "", record["resource"])  # drop count/for_each indexes


def failures(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(r["check_id"], resource_name(r)) for r in report["results"]["failed_checks"]}


# ---- the tool itself ------------------------------------------------------------------------------


def test_the_pinned_tools_are_the_ones_running(reports):
    assert version("checkov") == "3.3.30"
    assert version("pycep-parser") == "0.7.1", "install pycep-parser 0.7.1 with --no-deps after checkov"
    for name in ("bicep", "terraform"):
        assert reports[name]["summary"]["checkov_version"] == "3.3.30"


@pytest.mark.parametrize("framework", ["bicep", "terraform"])
def test_checkov_parses_every_file(reports, framework):
    report = reports[framework]
    assert report["results"].get("parsing_errors", []) == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] > 20, "checkov saw almost nothing: is the stack there?"


def test_a_bicep_parse_failure_is_detected(reports):
    errors = reports["broken bicep"]["results"].get("parsing_errors", [])
    assert any(e.endswith(BROKEN_BICEP) for e in errors), errors


# ---- zero failed checks, every skip justified -----------------------------------------------------


def test_every_skip_is_justified():
    seen = set()
    for entry in SKIPS:
        assert re.fullmatch(r"CKV2?_[A-Z]+_\d+", entry["check"]), entry
        assert entry["check"] not in seen, f"{entry['check']} is listed twice"
        seen.add(entry["check"])
        assert entry.get("resources"), f"{entry['check']} names no resource"
        assert len(entry.get("reason", "").split()) >= 12, f"{entry['check']} needs a real reason"


def test_skips_live_in_one_file():
    for path in list((INFRA / "bicep").rglob("*.bicep")) + list((INFRA / "terraform").glob("*.tf")):
        assert "checkov:skip" not in path.read_text(encoding="utf-8"), f"{path}: list skips in skips.yaml"


def accepted() -> set[tuple[str, str]]:
    return {(entry["check"], resource) for entry in SKIPS for resource in entry["resources"]}


@pytest.mark.parametrize("framework", ["bicep", "terraform"])
def test_no_failed_check_without_a_justified_skip(reports, framework):
    unexplained = failures(reports[framework]) - accepted()
    details = [
        f"{r['check_id']} {r['resource']} ({r['file_path']}): {r['check_name']}"
        for r in reports[framework]["results"]["failed_checks"]
        if (r["check_id"], resource_name(r)) in unexplained
    ]
    assert not details, "fix these, or justify them in infra/checkov/skips.yaml:\n" + "\n".join(details)


def test_no_stale_skip(reports):
    failed = failures(reports["bicep"]) | failures(reports["terraform"])
    stale = sorted(skip for skip in accepted() if skip not in failed)
    assert not stale, f"these skips no longer match a failure, remove them: {stale}"


# ---- the custom policies --------------------------------------------------------------------------


def test_custom_policies_exist_for_the_flex_resource():
    flex = [
        path.name for path in POLICIES.glob("*.yaml")
        if "azurerm_function_app_flex_consumption" in path.read_text(encoding="utf-8")
    ]
    assert len(flex) >= 5, flex


@pytest.mark.parametrize("policy", sorted(POLICY_FRAMEWORKS))
def test_custom_policy_runs_and_passes(reports, policy):
    report = reports[POLICY_FRAMEWORKS[policy]]
    passed = [r for r in report["results"]["passed_checks"] if r["check_id"] == policy]
    failed = [r for r in report["results"]["failed_checks"] if r["check_id"] == policy]
    assert passed, f"{policy} never ran: a malformed policy is silently dropped by checkov"
    assert not failed, [r["resource"] for r in failed]


@pytest.mark.parametrize("policy", sorted(POLICY_FRAMEWORKS))
def test_custom_policy_catches_its_violation(reports, policy):
    mutations = {m[3] for m in TERRAFORM_MUTATIONS + BICEP_MUTATIONS}
    assert policy in mutations, f"add a mutation that breaks {policy} to test_checkov.py"
    report = reports[f"broken {POLICY_FRAMEWORKS[policy]}"]
    failed = {r["check_id"] for r in report["results"]["failed_checks"]}
    assert policy in failed, f"{policy} did not fail on a stack broken on purpose"


def test_the_key_vault_without_diagnostics_is_caught(reports):
    """CKV2_GW_13 covers the vault itself, not only the resources whose mutation fails it first."""
    failed = {resource_name(r) for r in reports["broken terraform"]["results"]["failed_checks"]
              if r["check_id"] == "CKV2_GW_13"}
    assert {"azurerm_key_vault.main", "azurerm_cognitive_account.openai"} <= failed


def test_the_comparison_flags_an_unjustified_failure(reports):
    """Sanity check of the two tests above on real data: the broken copies fail checks nobody skipped."""
    unexplained = failures(reports["broken terraform"]) - accepted()
    assert any(check == "CKV2_GW_1" for check, _ in unexplained)
