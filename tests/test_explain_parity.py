"""`python -m shared explain` and `POST /manage/explain` give one answer: the same token, the same tables,
the same settings, the same JSON (only the key's age and how this process came by it differ)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from tests.harness import AUDIENCE, ROOT, NewWorld, World, sandbox_config

ADMIN = "user:dev/root"


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> Iterator[World]:
    doc = sandbox_config(idp, emulator, workspaces=[{"name": "lab"}])
    doc["models"].append({"name": "lab-model", "workspace": "lab",
                          "targets": [{"account": "emulator", "deployment": "lab-dep"}]})
    doc["collaborators"].append({"resource": "workspace:lab", "principal": "user:dev/wendy",
                                 "role": "editor"})
    with new_world(config=doc, env={"GATEWAY_ADMINS": ADMIN}) as world:
        yield world


def timeless(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what depends on when, and in which process, the key set was fetched."""
    key = report.get("key")
    if key is not None:
        report = {**report, "key": {k: v for k, v in key.items() if k not in ("age_seconds", "state")}}
    return report


@functools.cache
def json_flag() -> tuple[str, ...]:
    """`--output json` once the CLI has it (its output flags are being reworked); until then explain
    prints JSON by default and takes no flag."""
    usage = subprocess.run([sys.executable, "-m", "shared", "explain", "--help"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60).stdout
    return ("--output", "json") if "--output" in usage else ()


def cli_explain(world: World, token: str, resource: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "shared", "explain", "--token", token, "--resource",
                             resource, *json_flag()], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, **world.env}, timeout=60)
    assert result.stdout, result.stderr
    return dict(json.loads(result.stdout))


CASES = [
    ("allowed", "alice", {"groups": ["developers"]}, AUDIENCE, "model:gpt-4o"),
    ("via-workspace", "wendy", None, AUDIENCE, "model:lab-model"),
    ("admin-by-setting", "root", None, AUDIENCE, "gateway:default"),
    ("no-binding", "bob", {"groups": ["guests"]}, AUDIENCE, "model:gpt-4o"),
    ("unknown-model", "alice", {"groups": ["developers"]}, AUDIENCE, "model:ghost"),
    ("not-a-resource", "alice", {"groups": ["developers"]}, AUDIENCE, "nonsense"),
    ("wrong-audience", "carol", None, "api://elsewhere", "model:gpt-4o"),
]


@pytest.mark.parametrize(("case", "sub", "claims", "audience", "resource"), CASES, ids=[c[0] for c in CASES])
def test_cli_and_manage_explain_agree(world: World, idp: DevIdentityProvider, case: str, sub: str,
                                      claims: dict[str, Any] | None, audience: str, resource: str) -> None:
    token = idp.mint(sub, claims=claims, audience=audience)
    answer = world.api("root").post("explain", {"token": token, "resource": resource})
    assert answer.status_code == 200, answer.text
    served, local = answer.json(), cli_explain(world, token, resource)
    assert timeless(local) == timeless(served)
    assert served["checks"], served
