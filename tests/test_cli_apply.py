"""`apply` and `diff` through the real entry point (`python -m shared`) on Azurite: what the file lacks
is kept unless --prune, large deletions need --yes (or a "yes" typed at a terminal), an empty file is
refused, plans show old and new values, and a write names its target first."""

from __future__ import annotations

import copy
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from shared.config.allowlist import Allowlist
from shared.config.schema import parse
from shared.settings import load
from tests.harness import ROOT, Tables, gateway_env, sandbox_config


def cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The CLI as an operator's script runs it: standard input is not a terminal."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run([sys.executable, "-m", "shared", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**base, **env}, timeout=60, input=stdin)


@pytest.fixture
def base(idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> dict[str, Any]:
    """The sandbox configuration: one provider and identity, one account, three models, two bindings."""
    return sandbox_config(idp, emulator)


@pytest.fixture
def env(tables: Tables, base: dict[str, Any]) -> dict[str, str]:
    tables.apply(base)
    return gateway_env(tables)


def write(tmp_path: Path, doc: Any, name: str = "gateway.json") -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return str(path)


def without_model(doc: dict[str, Any], name: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["models"] = [m for m in out["models"] if m["name"] != name]
    out["collaborators"] = [c for c in out["collaborators"] if c["resource"] != f"model:{name}"]
    return out


def model_names(tables: Tables) -> set[str]:
    return {m.name for m in tables.load().models}


def test_apply_keeps_and_lists_what_the_file_lacks_unless_pruned(
        tables: Tables, env: dict[str, str], base: dict[str, Any], tmp_path: Path) -> None:
    path = write(tmp_path, without_model(base, "secret-model"))
    kept = cli(env, "apply", "-f", path)
    assert kept.returncode == 0, kept.stderr
    assert "= kept (not in file): model secret-model" in kept.stdout
    assert "no changes" in kept.stdout and "--prune deletes them" in kept.stdout
    assert "secret-model" in model_names(tables)

    pruned = cli(env, "apply", "-f", path, "--prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "- model secret-model" in pruned.stdout and "kept" not in pruned.stdout
    assert model_names(tables) == {"gpt-4o", "embed"}


def test_prune_removes_a_resource_and_everything_referring_to_it_in_order(
        tables: Tables, env: dict[str, str], base: dict[str, Any], tmp_path: Path) -> None:
    """Bindings go before their resource and the identity they name, a model before its account: the
    store's change-set rules hold at every step, and the result is the file."""
    doc = without_model(base, "embed")
    doc["external_identities"] = []
    doc["collaborators"] = []
    result = cli(env, "apply", "-f", write(tmp_path, doc), "--prune", "--yes")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    order = [lines.index(line) for line in (
        "- collaborator identity:developers on model:gpt-4o (viewer)", "- model embed",
        "- external identity developers")]
    assert order == sorted(order)
    assert tables.load() == parse(doc, allowlist=Allowlist.from_settings(load(env)))


def test_pruning_the_last_admin_binding_is_refused_and_writes_nothing(
        tables: Tables, base: dict[str, Any], tmp_path: Path) -> None:
    admin = {"resource": "gateway:default", "principal": "user:dev/root", "role": "admin"}
    tables.apply({**base, "collaborators": [*base["collaborators"], admin]})
    env = gateway_env(tables)           # GATEWAY_ADMINS names nobody: the binding is the only admin
    before = tables.load()
    result = cli(env, "apply", "-f", write(tmp_path, without_model(base, "secret-model")), "--prune")
    assert result.returncode == 2
    assert "last admin binding on gateway:default" in result.stderr
    assert "nothing was changed" in result.stderr
    assert tables.load() == before


def test_the_plan_shows_each_changed_field_with_its_old_and_new_value(
        env: dict[str, str], base: dict[str, Any], tmp_path: Path) -> None:
    doc = copy.deepcopy(base)
    doc["models"][0]["targets"][0]["deployment"] = "gpt-4o-next"
    doc["models"][1]["targets"].append({"account": "emulator", "deployment": "d" * 64})
    doc["collaborators"][1]["role"] = "editor"
    doc["workspaces"] = [{"name": "research"}]
    result = cli(env, "diff", "-f", write(tmp_path, doc))
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert '~ model gpt-4o: targets[0].deployment: "gpt-4o-dep" -> "gpt-4o-next"' in lines
    assert "~ collaborator identity:developers on model:embed: role: \"viewer\" -> \"editor\"" in lines
    assert "+ workspace research" in lines
    added = next(line for line in lines if line.startswith("~ model embed: targets[1]: (unset) -> "))
    assert added.endswith("…") and "d" * 64 not in result.stdout      # long values are cut short
    assert lines[-1] == "4 change(s) to apply: 1 created, 3 updated"
    assert "target:" in result.stderr and "target:" not in result.stdout


@pytest.mark.parametrize(("case", "code", "says"), [
    ("same", 0, "no changes"),
    ("changed", 1, "1 change(s) to apply"),
    ("kept only", 0, "= kept (not in file): model secret-model"),
    ("invalid", 2, "unknown account 'ghost'"),
    ("unreadable", 2, "cannot be read"),
    ("empty", 2, "holds no configuration"),
])
def test_diff_exits_0_when_nothing_would_change_1_when_something_would_2_on_error(
        tables: Tables, env: dict[str, str], base: dict[str, Any], tmp_path: Path,
        case: str, code: int, says: str) -> None:
    doc = copy.deepcopy(base)
    if case == "changed":
        doc["models"][0]["targets"][0]["deployment"] = "other"
    elif case == "kept only":
        doc = without_model(doc, "secret-model")
    elif case == "invalid":
        doc["models"][0]["targets"][0]["account"] = "ghost"
    path = write(tmp_path, "", "gateway.yaml") if case == "empty" else write(tmp_path, doc)
    if case == "unreadable":
        path = str(tmp_path / "missing.yaml")
    before = tables.load()
    result = cli(env, "diff", "-f", path)
    assert result.returncode == code, result.stdout + result.stderr
    assert says in (result.stdout if code < 2 else result.stderr)
    assert tables.load() == before


def test_diff_with_prune_counts_the_deletions_and_says_apply_would_ask(
        tables: Tables, env: dict[str, str], base: dict[str, Any], tmp_path: Path) -> None:
    result = cli(env, "diff", "-f", write(tmp_path, "{}", "gateway.yaml"), "--prune")
    assert result.returncode == 1
    assert "- identity provider dev" in result.stdout
    assert "apply --prune would ask for --yes: it deletes 8 entities (more than 5)" in result.stdout
    assert model_names(tables) == {"gpt-4o", "embed", "secret-model"}


def extra_workspaces(base: dict[str, Any], count: int) -> dict[str, Any]:
    return {**base, "workspaces": [{"name": f"ws{i}"} for i in range(count)]}


@pytest.mark.parametrize(("stored", "file", "why"), [
    (6, 0, "it deletes 6 entities (more than 5)"),
    (2, 0, "it deletes every one of the stored workspaces"),
], ids=["over-the-threshold", "a-whole-kind"])
def test_large_deletions_without_yes_and_without_a_terminal_are_refused(
        tables: Tables, base: dict[str, Any], tmp_path: Path, stored: int, file: int, why: str) -> None:
    tables.apply(extra_workspaces(base, stored))
    env = gateway_env(tables)
    before = tables.load()
    path = write(tmp_path, extra_workspaces(base, file))
    refused = cli(env, "apply", "-f", path, "--prune")
    assert refused.returncode == 2
    assert f"not applied: {why}; nothing was changed" in refused.stderr
    assert "--yes" in refused.stderr
    assert "- workspace ws1" in refused.stdout        # the plan was shown
    assert tables.load() == before

    done = cli(env, "apply", "-f", path, "--prune", "--yes")
    assert done.returncode == 0, done.stderr
    assert len(tables.load().workspaces) == file


@pytest.mark.parametrize(("limit", "code"), [
    ((), 2), (("--max-deletes", "7"), 0), (("--max-deletes", "6"), 2)])
def test_max_deletes_sets_the_threshold(tables: Tables, base: dict[str, Any], tmp_path: Path,
                                        limit: tuple[str, ...], code: int) -> None:
    tables.apply(extra_workspaces(base, 8))
    path = write(tmp_path, {**base, "workspaces": [{"name": "ws0"}]})      # 7 deletions, not every one
    result = cli(gateway_env(tables), "apply", "-f", path, "--prune", *limit)
    assert result.returncode == code, result.stderr
    assert len(tables.load().workspaces) == (1 if code == 0 else 8)


def at_a_terminal(env: dict[str, str], answer: bytes, *args: str) -> tuple[int, str, str]:
    """The CLI with a terminal as standard input, on which `answer` is typed."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen([sys.executable, "-m", "shared", *args], cwd=ROOT, env={**base, **env},
                                   stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.write(controller, answer)
        out, err = process.communicate(timeout=60)
    finally:
        os.close(terminal)
        os.close(controller)
    return process.returncode, out, err


@pytest.mark.parametrize(("answer", "code", "left"), [(b"yes\n", 0, 0), (b"no\n", 2, 6)])
def test_at_a_terminal_large_deletions_are_asked_for(
        tables: Tables, base: dict[str, Any], tmp_path: Path, answer: bytes, code: int, left: int) -> None:
    tables.apply(extra_workspaces(base, 6))
    path = write(tmp_path, base)
    result, out, err = at_a_terminal(gateway_env(tables), answer, "apply", "-f", path, "--prune")
    assert result == code, out + err
    assert "it deletes 6 entities (more than 5) on devstoreaccount1" in err and "Type yes to apply" in err
    assert len(tables.load().workspaces) == left


@pytest.mark.parametrize("content", ["", "{}\n", "models: []\ncollaborators: []\n"],
                         ids=["empty", "no-sections", "empty-sections"])
def test_an_empty_file_is_refused_unless_prune_and_yes_say_so(
        tables: Tables, env: dict[str, str], tmp_path: Path, content: str) -> None:
    path = write(tmp_path, content, "gateway.yaml")
    before = tables.load()
    for flags in ((), ("--prune",)):
        result = cli(env, "apply", "-f", path, *flags)
        assert result.returncode == 2, result.stdout
        assert "holds no configuration" in result.stderr and "apply --prune --yes" in result.stderr
        assert tables.load() == before
    emptied = cli(env, "apply", "-f", path, "--prune", "--yes")
    assert emptied.returncode == 0, emptied.stderr
    assert model_names(tables) == set() and tables.load().identity_providers == ()


def test_yes_without_prune_is_a_usage_error(env: dict[str, str], base: dict[str, Any],
                                            tmp_path: Path) -> None:
    result = cli(env, "apply", "-f", write(tmp_path, base), "--yes")
    assert result.returncode == 2 and "--yes confirms the deletions of --prune" in result.stderr


def test_a_write_names_its_target_first_and_never_its_key(
        tables: Tables, env: dict[str, str], base: dict[str, Any], tmp_path: Path) -> None:
    result = cli(env, "apply", "-f", write(tmp_path, base))
    assert result.returncode == 0, result.stderr
    port = env["GATEWAY_TABLES_CONNECTION"].split("127.0.0.1:")[1].split("/")[0]
    first = result.stderr.splitlines()[0]
    assert first == f"target: devstoreaccount1 (127.0.0.1:{port}), tables {tables.prefix}*"
    key = env["GATEWAY_TABLES_CONNECTION"].split("AccountKey=")[1].split(";")[0]
    assert key not in result.stdout + result.stderr


@pytest.mark.parametrize("command", [("apply", "-f", "{file}"), ("diff", "-f", "{file}"), ("export",),
                                     ("serve", "--port", "0"), ("usage",), ("audit",)])
def test_both_table_settings_set_is_an_error_naming_both(
        env: dict[str, str], base: dict[str, Any], tmp_path: Path, command: tuple[str, ...]) -> None:
    both = {**env, "GATEWAY_TABLES_ENDPOINT": "https://stexample.table.core.windows.net"}
    args = [a.format(file=write(tmp_path, base)) for a in command]
    result = cli(both, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "GATEWAY_TABLES_CONNECTION and GATEWAY_TABLES_ENDPOINT are both set" in result.stderr
    assert "target:" not in result.stderr           # nothing was aimed at either store
