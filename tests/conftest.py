"""Shared fixtures: Azurite, the sandbox's identity provider and emulator, the gateway under uvicorn.

Everything runs over real sockets on loopback; nothing of the gateway's own is faked.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.azurite import Azurite, free_port, port_open, terminate
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from shared.config.allowlist import Allowlist
from shared.config.model import Config
from shared.config.plan import plan, writes
from shared.config.schema import parse
from shared.config.store import ConfigStore
from shared.settings import load

ROOT = Path(__file__).resolve().parent.parent

EMULATOR_KEY = "emulator-test-key"
EMULATOR_KEY_ENV = "GATEWAY_SECRET_EMULATOR_KEY"   # the variable the test gateways read it from


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(tmp_path_factory.mktemp("azurite")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def loop() -> Iterator[BackgroundLoop]:
    with BackgroundLoop() as background:
        yield background


@pytest.fixture(scope="session")
def idp(loop: BackgroundLoop) -> Iterator[DevIdentityProvider]:
    provider = DevIdentityProvider()
    loop.run(provider.start())
    yield provider
    loop.run(provider.stop())


@pytest.fixture(scope="session")
def emulator(loop: BackgroundLoop) -> Iterator[AzureOpenAIEmulator]:
    server = AzureOpenAIEmulator(api_key=EMULATOR_KEY, chunk_interval=0.005)
    loop.run(server.start())
    yield server
    loop.run(server.stop())


def unique_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


class Tables:
    """The configuration tables of one gateway, written the way `apply` writes them."""

    def __init__(self, azurite: Azurite, prefix: str) -> None:
        self.prefix = prefix
        self.env = {"GATEWAY_TABLES_CONNECTION": azurite.connection_string, "GATEWAY_TABLE_PREFIX": prefix}

    def _run(self, work: Any) -> Any:
        async def go() -> Any:
            store = ConfigStore.from_settings(load(self.env))
            try:
                return await work(store)
            finally:
                await store.aclose()

        return asyncio.run(go())

    def apply(self, doc: dict[str, Any], **settings: str) -> None:
        """Check `doc` as `apply` would under the test gateways' settings (`gateway_env`, plus
        `settings`), then write it."""
        desired = parse(doc, allowlist=Allowlist.from_settings(load(gateway_env(self, **settings))))

        async def work(store: ConfigStore) -> None:
            current, _ = await store.load()
            await store.write(writes(plan(current, desired)))

        self._run(work)

    def load(self) -> Config:
        async def work(store: ConfigStore) -> Config:
            return (await store.load())[0]

        return self._run(work)


def sandbox_config(idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, **extra: Any) -> dict[str, Any]:
    """A configuration with one provider, one account on the emulator, and two models."""
    doc: dict[str, Any] = {
        "identity_providers": [{"name": "dev", "jwks_uri": idp.jwks_uri, "issuer": idp.issuer,
                                "audiences": ["api://ai-gateway"]}],
        "external_identities": [{"name": "developers", "identity_provider": "dev",
                                 "claims": {"groups": "developers"}}],
        "accounts": [{"name": "emulator", "kind": "azure-openai", "endpoint": emulator.url,
                      "auth": {"type": "api-key", "key_env": EMULATOR_KEY_ENV}}],
        "models": [{"name": "gpt-4o", "targets": [{"account": "emulator", "deployment": "gpt-4o-dep"}]},
                   {"name": "embed", "targets": [{"account": "emulator", "deployment": "embed-dep"}]},
                   {"name": "secret-model", "targets": [{"account": "emulator", "deployment": "x"}]}],
        "collaborators": [{"resource": "model:gpt-4o", "principal": "identity:developers", "role": "viewer"},
                          {"resource": "model:embed", "principal": "identity:developers", "role": "viewer"}],
    }
    doc.update(extra)
    return doc


class GatewayProcess:
    """`python -m shared serve` in its own process: the real uvicorn, the real route table."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shared", "serve", "--port", str(self.port)], cwd=ROOT, env=full_env,
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gateway did not start:\n{self.logs()}")
            time.sleep(0.05)

    def logs(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        terminate(self.process)
        self._log.close()


def gateway_env(tables: Tables, **extra: str) -> dict[str, str]:
    return {**tables.env, "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK": "true", EMULATOR_KEY_ENV: EMULATOR_KEY,
            "GATEWAY_CONFIG_REFRESH_SECONDS": "0.5", **extra}


@pytest.fixture
def tables(azurite: Azurite) -> Tables:
    return Tables(azurite, unique_prefix())


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Any]:
    started: list[GatewayProcess] = []

    def start(env: dict[str, str]) -> GatewayProcess:
        gw = GatewayProcess(env, tmp_path / f"gateway-{len(started)}.log")
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


# -- markers ---------------------------------------------------------------------------------------
# `make test-fast` runs `-m unit`. A test without an explicit marker is classified by what it uses:
# a gateway process -> e2e; a real server on loopback (Azurite, the dev IdP, the emulator) -> integration;
# nothing of the kind -> unit.
SERVER_FIXTURES = frozenset({"azurite", "idp", "emulator", "loop", "tables", "start_gateway"})
TIERS = ("unit", "integration", "e2e")


def _tier(item: pytest.Item) -> str:
    module = getattr(item, "module", None)
    fixtures = set(getattr(item, "fixturenames", ()))
    if "start_gateway" in fixtures or (module is not None and hasattr(module, "GatewayProcess")):
        return "e2e"
    if fixtures & SERVER_FIXTURES:
        return "integration"
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(tier) for tier in TIERS):
            item.add_marker(getattr(pytest.mark, _tier(item)))
