"""Changes as a whole: all or nothing, audited from the CLI too, and seen by every running process."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import requests

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from tests.harness import Api, Tables, gateway_env, sandbox_config
from tests.manage.conftest import ROOT_ADMIN, cli, wait_until


def test_apply_that_fails_midway_leaves_nothing_written(
        tables: Tables, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, tmp_path: Path) -> None:
    doc = sandbox_config(idp, emulator)
    tables.apply(doc)
    before = tables.load()
    env = gateway_env(tables)
    # valid as a file, but the last entity is over table storage's 64 KiB property limit: the store
    # refuses it after the workspace and the first model were already written
    many = [{"account": "emulator", "deployment": f"{i:04d}" + "x" * 60} for i in range(800)]
    desired = {**doc, "workspaces": [{"name": "ws-new"}],
               "models": [*doc["models"],
                          {"name": "aaa", "workspace": "ws-new",
                           "targets": [{"account": "emulator", "deployment": "fine"}]},
                          {"name": "zzz", "targets": many}]}
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(desired))
    result = cli(env, "apply", "-f", str(path))
    assert result.returncode == 2
    assert "+ workspace ws-new" in result.stdout and "+ model zzz" in result.stdout
    assert "too large" in result.stderr and "nothing was changed" in result.stderr
    assert tables.load() == before
    assert "ws-new" not in cli(env, "audit").stdout

    # the same file without the oversized model applies, audited as the operating-system user
    desired["models"] = desired["models"][:-1]
    path.write_text(json.dumps(desired))
    assert cli(env, "apply", "-f", str(path)).returncode == 0
    assert {m.name for m in tables.load().models} >= {"aaa"}
    entries = json.loads(cli(env, "audit", "--output", "json").stdout)
    mine = {(e["action"], e["kind"], e["key"]): e for e in entries}
    assert mine[("create", "models", "aaa")]["actor"] == f"os:{getpass.getuser()}"
    assert mine[("create", "workspaces", "ws-new")]["after"] == {"name": "ws-new"}
    assert len({e["change_set"] for e in entries if e["key"] in ("aaa", "ws-new")}) == 1
    assert cli(env, "diff", "-f", str(path)).stdout.strip() == "no changes"


def visible_models(gw_url: str, token: str) -> set[str]:
    answer = requests.get(gw_url + "/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return {m["id"] for m in answer.json()["data"]}


def test_moving_a_model_between_workspaces_changes_access_on_every_process(
        tables: Tables, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, start_gateway: Any) -> None:
    doc = sandbox_config(idp, emulator, workspaces=[{"name": "research"}, {"name": "finance"}])
    doc["models"].append({"name": "mover", "workspace": "research",
                          "targets": [{"account": "emulator", "deployment": "m"}]})
    doc["collaborators"].append({"resource": "workspace:research", "principal": "user:dev/rita",
                                 "role": "viewer"})
    tables.apply(doc)
    env = gateway_env(tables, GATEWAY_ADMINS=ROOT_ADMIN, GATEWAY_CONFIG_REFRESH_SECONDS="1")
    first, second = start_gateway(env), start_gateway(env)
    rita = idp.mint("rita", audience="api://ai-gateway")
    assert all("mover" in visible_models(gw.url, rita) for gw in (first, second))

    admin = Api(first.url, idp, "root")
    moved = admin.put("models/mover", {"workspace": "finance",
                                       "targets": [{"account": "emulator", "deployment": "m"}]})
    assert moved.status_code == 200, moved.text
    for gw in (first, second):   # both processes, within the refresh interval (polled, not timed)
        assert wait_until(lambda gw=gw: "mover" not in visible_models(gw.url, rita))
    assert Api(second.url, idp, "rita").get("models/mover").status_code == 404

    back = admin.put("models/mover", {"workspace": "research",
                                      "targets": [{"account": "emulator", "deployment": "m"}]})
    assert back.status_code == 200
    for gw in (first, second):
        assert wait_until(lambda gw=gw: "mover" in visible_models(gw.url, rita))
    assert Api(second.url, idp, "rita").get("models/mover").status_code == 200


def test_a_grant_through_one_process_is_served_by_the_other(
        tables: Tables, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, start_gateway: Any) -> None:
    tables.apply(sandbox_config(idp, emulator))
    env = gateway_env(tables, GATEWAY_ADMINS=ROOT_ADMIN, GATEWAY_CONFIG_REFRESH_SECONDS="1")
    first, second = start_gateway(env), start_gateway(env)
    sam = idp.mint("sam", audience="api://ai-gateway")
    assert "secret-model" not in visible_models(second.url, sam)
    grant = Api(first.url, idp, "root").put("collaborators", {"resource": "model:secret-model",
                                                              "principal": "user:dev/sam", "role": "viewer"})
    assert grant.status_code == 201
    assert wait_until(lambda: "secret-model" in visible_models(second.url, sam))
    assert wait_until(lambda: "secret-model" in visible_models(first.url, sam))
    revoke = Api(second.url, idp, "root").delete("collaborators", {"resource": "model:secret-model",
                                                                   "principal": "user:dev/sam"})
    assert revoke.status_code == 204
    assert wait_until(lambda: "secret-model" not in visible_models(first.url, sam))


def test_many_bindings_on_one_resource_round_trip(tables: Tables, idp: DevIdentityProvider,
                                                   emulator: AzureOpenAIEmulator) -> None:
    """Bindings of one resource are stored together; a large set spans several properties."""
    doc = sandbox_config(idp, emulator)
    doc["collaborators"] += [{"resource": "model:secret-model", "principal": f"user:dev/ü{i:05d}/x:y|z#",
                              "role": ("viewer", "editor", "manager")[i % 3]} for i in range(1500)]
    tables.apply(doc)
    loaded = tables.load()
    assert len(loaded.collaborators) == len(doc["collaborators"])
    assert {(c.principal, c.role) for c in loaded.collaborators if c.resource == "model:secret-model"} == \
        {(b["principal"], b["role"]) for b in doc["collaborators"][2:]}
    doc["collaborators"] = doc["collaborators"][:2]
    tables.apply(doc)
    assert len(tables.load().collaborators) == 2
