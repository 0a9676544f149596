"""`python -m shared status` beside `make run` reads what the running gateway reads: the environment over
local.settings.json's Values. With the file `make run` writes (a copy of local.settings.sample.json) the
sandbox's world is healthy; with a setting missing, status names it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from sandbox.register import sandbox_document
from tests.harness import ROOT, Tables

SANDBOX_KEY_ENV = "GATEWAY_SECRET_SANDBOX_AOAI_KEY"   # the variable the sandbox names for its account


def status_beside_make_run(tables: Tables, workdir: Path,
                           values: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`status` run from a directory whose local.settings.json holds `values`, with nothing of the
    gateway's in the environment but where the tables are (Azurite on a test port, a fresh prefix)."""
    (workdir / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(tables.env, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "shared", "status"], cwd=workdir, capture_output=True,
                          text=True, env=env, timeout=60)


@pytest.fixture
def sample() -> dict[str, str]:
    return dict(json.loads((ROOT / "local.settings.sample.json").read_text())["Values"])


@pytest.fixture
def sandboxed(tables: Tables, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> Tables:
    """The tables as `make run` leaves them: the sandbox's provider, account and models."""
    tables.apply(sandbox_document(idp.jwks_uri, idp.issuer, emulator.url, SANDBOX_KEY_ENV))
    return tables


def test_status_beside_make_run_is_healthy(sandboxed: Tables, tmp_path: Path, sample: dict[str, str]) -> None:
    result = status_beside_make_run(sandboxed, tmp_path, sample)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gateway: OK" in result.stdout


@pytest.mark.parametrize(("missing", "named"), [
    (SANDBOX_KEY_ENV, f"environment variable {SANDBOX_KEY_ENV}"),
    ("GATEWAY_DEV_ALLOW_HTTP_LOOPBACK", "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK=true"),
])
def test_status_names_the_local_setting_it_lacks(sandboxed: Tables, tmp_path: Path, sample: dict[str, str],
                                                 missing: str, named: str) -> None:
    result = status_beside_make_run(sandboxed, tmp_path, {k: v for k, v in sample.items() if k != missing})
    assert result.returncode == 1 and "gateway: DEGRADED" in result.stdout
    assert named in result.stdout
