"""Pre-warm across instances (issue: the timer runs on one instance only): a timer process and two
serving processes on one Azurite, with the identity provider down and then Entra down.

A cold process serves known key ids from the last-known-good keys the timer stored, before (and
without) reaching the provider; a warm process keeps its cached Entra token while Entra is down; the
timer's record and `status` say what is wrong, in words.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.azurite import Azurite
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.entra import FakeEntra, Signer
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from tests.harness import ROOT, GatewayProcess, Tables, gateway_env, sandbox_config, unique_prefix
from tests.upstream.helpers import CLIENT, TENANT, TLSFiles

SECRET = "client-secret-for-tests"


@pytest.fixture
def world(azurite: Azurite, loop: BackgroundLoop, tls: TLSFiles, signers: dict[str, Signer],
          tmp_path: Path) -> Iterator[dict[str, Any]]:
    idp = DevIdentityProvider()
    loop.run(idp.start())
    entra = FakeEntra(ssl_context=tls.server, client_ssl=tls.client, signer=signers["entra"])
    loop.run(entra.start())
    entra.add_app(TENANT, CLIENT, secrets=[SECRET])
    emulator = AzureOpenAIEmulator(api_key=None, bearer_check=entra.bearer_check())
    loop.run(emulator.start())
    doc = sandbox_config(idp, emulator)
    doc["accounts"] = [{"name": "emulator", "kind": "azure-openai", "endpoint": emulator.url,
                        "auth": {"type": "client-secret", "tenant_id": TENANT, "client_id": CLIENT,
                                 "secret_env": "GATEWAY_SECRET_AOAI", "authority_host": entra.url}}]
    tables = Tables(azurite, unique_prefix())
    tables.apply(doc, GATEWAY_AUTHORITY_HOSTS=entra.url)
    env = gateway_env(tables, SSL_CERT_FILE=tls.ca_file, GATEWAY_SECRET_AOAI=SECRET,
                      GATEWAY_AUTHORITY_HOSTS=entra.url)
    started: list[GatewayProcess] = []

    def serve() -> GatewayProcess:
        started.append(GatewayProcess(env, tmp_path / f"gateway-{len(started)}.log"))
        return started[-1]

    yield {"idp": idp, "entra": entra, "env": env, "serve": serve}
    for gw in started:
        gw.stop()
    loop.run(emulator.stop())
    loop.run(entra.stop())
    loop.run(idp.stop())


def timer(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The timer's job in its own process, as on Flex Consumption."""
    return subprocess.run([sys.executable, "-m", "shared", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=90)


async def chat(gw: GatewayProcess, token: str) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as session, session.post(
            gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {token}"},
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}) as r:
        return r.status, dict(r.headers), await r.json()


async def test_cold_and_warm_processes_ride_out_provider_and_entra_outages(world: dict[str, Any]) -> None:
    idp: DevIdentityProvider = world["idp"]
    entra: FakeEntra = world["entra"]
    env = world["env"]
    token = idp.mint("alice", claims={"groups": ["developers"]}, audience="api://ai-gateway")

    recorded = timer(env, "prewarm", "--output", "json")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert json.loads(recorded.stdout)["accounts"] == {"emulator": {"ok": True, "error": None}}
    warm = world["serve"]()
    assert (await chat(warm, token))[0] == 200

    # The identity provider goes down: a brand-new process still accepts known key ids.
    idp.fault = "down"
    fetches = idp.fetch_count
    cold = world["serve"]()
    status, _, body = await chat(cold, token)
    assert status == 200, body
    assert idp.fetch_count == fetches, "the cold process used the stored keys, not the provider"
    rotated = idp.mint("alice", claims={"groups": ["developers"]}, audience="api://ai-gateway",
                       kid=idp.add_key("RS256"))
    status, headers, body = await chat(cold, rotated)
    assert status == 401 and "unavailable" in headers["WWW-Authenticate"]
    assert "unknown key id" in body["error"]["message"]

    # Entra goes down too: both processes keep serving on the tokens they hold.
    entra.outage = 503
    for gw in (warm, cold):
        status, _, body = await chat(gw, token)
        assert status == 200, body

    # The timer's next run records both faults, and status says them in words.
    failed = timer(env, "prewarm", "--output", "json")
    assert failed.returncode == 1
    report = json.loads(failed.stdout)
    assert "503" in report["identity_providers"]["dev"]["error"]
    assert "Entra" in report["accounts"]["emulator"]["error"]
    shown = timer(env, "status")
    assert shown.returncode == 1
    assert "last timer run:" in shown.stdout and "with failures" in shown.stdout
    assert "identity_providers dev:" in shown.stdout and "accounts emulator:" in shown.stdout
    assert "is unavailable" in shown.stdout
    assert token not in shown.stdout + failed.stdout
