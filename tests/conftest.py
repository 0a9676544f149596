"""Shared fixtures: Azurite, the sandbox's identity provider and emulator, gateways started for a test;
and the tier markers. How a world is built (tables, a gateway process, tokens, raw HTTP) is in
tests/harness.py.

Everything runs over real sockets on loopback; nothing of the gateway's own is faked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.azurite import Azurite
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from tests.harness import (
    GatewayProcess,
    NewWorld,
    Tables,
    emulator_running,
    start_world,
    unique_prefix,
)


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
    with emulator_running(loop, 0.005) as server:
        yield server


@pytest.fixture(scope="session")
def new_world(azurite: Azurite, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
              tmp_path_factory: pytest.TempPathFactory) -> NewWorld:
    """Worlds on the session's servers, each logging in a directory of its own."""
    return lambda **options: start_world(azurite, idp, emulator, tmp_path_factory.mktemp("gw"), **options)


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
GATEWAY_NAMES = ("GatewayProcess", "World", "start_world")   # a module holding one works with gateways
TIERS = ("unit", "integration", "e2e")


def _tier(item: pytest.Item) -> str:
    module = getattr(item, "module", None)
    fixtures = set(getattr(item, "fixturenames", ()))
    if fixtures & {"start_gateway", "new_world"} or any(hasattr(module, name) for name in GATEWAY_NAMES):
        return "e2e"
    if fixtures & SERVER_FIXTURES:
        return "integration"
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(tier) for tier in TIERS):
            item.add_marker(getattr(pytest.mark, _tier(item)))
