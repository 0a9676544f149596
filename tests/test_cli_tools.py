"""The operator's tools: `explain`, `status` and `prewarm` against real servers on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from tests.harness import EMULATOR_KEY_ENV, ROOT, Tables, gateway_env, sandbox_config


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60, input=stdin)


@pytest.fixture
def env(tables: Tables, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> dict[str, str]:
    tables.apply(sandbox_config(idp, emulator))
    return gateway_env(tables)


def explain(env: dict[str, str], token: str, resource: str) -> tuple[int, dict[str, Any]]:
    result = cli(env, "explain", "--token", "-", "--resource", resource, "--output", "json", stdin=token)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_explain_an_allowed_token(env: dict[str, str], idp: DevIdentityProvider) -> None:
    code, report = explain(env, idp.mint("alice", claims={"groups": ["developers"]},
                                         audience="api://ai-gateway"), "model:gpt-4o")
    assert code == 0 and report["allowed"] is True
    assert report["principal"] == "user:dev/alice" and report["identities"] == ["developers"]
    assert report["role"] == "viewer" and report["role_via"] == "model:gpt-4o"
    checks = {c["check"]: c for c in report["checks"]}
    assert all(c["passed"] for c in report["checks"])
    assert {"issuer", "audience", "signature", "access"} <= set(checks)
    assert report["provider"] == "dev" and "issuer" in report["provider_reason"]
    assert report["key"]["jwks_uri"] == idp.jwks_uri


@pytest.mark.parametrize(("claims", "audience", "resource", "failed", "words"), [
    ({"groups": ["developers"]}, "api://elsewhere", "model:gpt-4o", "audience", "audience"),
    ({"groups": ["guests"]}, "api://ai-gateway", "model:gpt-4o", "access", "no collaborator binding"),
    ({"groups": ["developers"]}, "api://ai-gateway", "model:ghost", "resource", "no model named 'ghost'"),
])
def test_explain_names_the_failed_check(env: dict[str, str], idp: DevIdentityProvider, claims: dict[str, Any],
                                        audience: str, resource: str, failed: str, words: str) -> None:
    code, report = explain(env, idp.mint("bob", claims=claims, audience=audience), resource)
    assert code == 1 and report["allowed"] is False
    last = report["checks"][-1]
    assert (last["check"], last["passed"]) == (failed, False)
    assert words in report["reason"]


def test_explain_never_echoes_the_token(env: dict[str, str], idp: DevIdentityProvider) -> None:
    token = idp.mint("carol", audience="api://elsewhere")
    result = cli(env, "explain", "--token", token, "--resource", "model:gpt-4o")
    assert token not in result.stdout + result.stderr
    assert token.split(".")[2] not in result.stdout + result.stderr


def test_status_and_prewarm_report_providers_and_accounts(env: dict[str, str]) -> None:
    result = cli(env, "status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gateway: OK" in result.stdout
    rows = [line.split()[:3] for line in result.stdout.splitlines() if line.startswith(("dev ", "emulator "))]
    assert rows == [["dev", "1", "0"], ["emulator", "api-key", "-"]]
    report = json.loads(cli(env, "status", "--json").stdout)
    assert report["identity_providers"]["dev"]["usable"] is True
    assert report["accounts"]["emulator"]["error"] is None
    prewarm = json.loads(cli(env, "prewarm", "--output", "json").stdout)
    assert prewarm["ok"] and prewarm["accounts"] == {"emulator": {"ok": True, "error": None}}


def test_status_says_what_is_wrong(env: dict[str, str]) -> None:
    broken = {**env, EMULATOR_KEY_ENV: ""}
    result = cli(broken, "status")
    assert result.returncode == 1
    assert "gateway: DEGRADED" in result.stdout
    assert f"environment variable {EMULATOR_KEY_ENV}" in result.stdout


def test_warm_up_does_what_a_cold_start_does(env: dict[str, str], idp: DevIdentityProvider,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """After the timer stored the keys, a warm-up takes them from the table and gets every token."""
    import asyncio

    from shared import prewarm, runtime

    assert cli(env, "prewarm").returncode == 0          # the timer, in its own process
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    fetches = idp.fetch_count

    async def warm() -> tuple[Any, Any]:
        try:
            await prewarm.warm_up()
            gw = await runtime.gateway()
            view = await gw.snapshot.current()
            keys = gw.authenticator.key_status(view.config)["dev"]
            return keys, gw.credentials.status(view.config.accounts)
        finally:
            await runtime.shutdown()

    keys, accounts = asyncio.run(warm())
    assert keys is not None and keys.usable and keys.origin == "table"
    assert idp.fetch_count == fetches, "no provider call: the stored keys were enough"
    assert accounts["emulator"]["error"] is None and accounts["emulator"]["refreshed_at"]
