"""Accuracy across instances: four gateway processes on one Azurite serve one rule to 64 concurrent
clients. Admitted requests and tokens never exceed a window's limit, and what is left unadmitted is
within the bound the leases allow (the units leased but unspent at the window's end: at most a tenth
of the limit per process).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.azurite import Azurite
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from tests.harness import (
    AUDIENCE,
    DEVELOPER,
    GatewayProcess,
    Tables,
    gateway_env,
    sandbox_config,
    unique_prefix,
)

PROCESSES = 4
CLIENTS = 64
SECONDS = 8.0
MESSAGES = [{"role": "user", "content": "How are you today?"}]

@pytest.fixture
def gateways(azurite: Azurite, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, tmp_path: Path,
             request: pytest.FixtureRequest) -> Iterator[list[GatewayProcess]]:
    metric, amount = request.param
    tables = Tables(azurite, unique_prefix())
    rule = {"name": "shared", "when": {"models": {"in": ["gpt-4o"]}},
            "limits": [{metric: amount, "per": "minute"}]}
    tables.apply(sandbox_config(idp, emulator, rate_limits=[rule]))
    env = gateway_env(tables, GATEWAY_LIMITS_STORE="table")
    started = [GatewayProcess(env, tmp_path / f"gateway-{i}.log") for i in range(PROCESSES)]
    try:
        yield started
    finally:
        for gw in started:
            gw.stop()


async def _hammer(urls: list[str], token: str) -> list[dict[str, Any]]:
    """Every client sends requests one after another, round robin over the gateways, for SECONDS;
    the usage of every admitted answer."""
    admitted: list[dict[str, Any]] = []
    deadline = time.monotonic() + SECONDS
    headers = {"Authorization": f"Bearer {token}"}

    async def client(session: aiohttp.ClientSession, n: int) -> None:
        while time.monotonic() < deadline:
            url = urls[n % len(urls)] + "/v1/chat/completions"
            n += 1
            async with session.post(url, json={"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 20},
                                    headers=headers) as answer:
                body = await answer.json()
                if answer.status == 200:
                    admitted.append(body["usage"])
                else:
                    assert answer.status == 429 and body["error"]["code"] == "rate_limit_exceeded", body

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(client(session, n) for n in range(CLIENTS)))
    return admitted


@pytest.mark.parametrize("gateways", [("requests", 200), ("tokens", 3000)], indirect=True,
                         ids=["requests", "tokens"])
def test_one_rule_holds_across_four_processes(gateways: list[GatewayProcess], idp: DevIdentityProvider,
                                              request: pytest.FixtureRequest) -> None:
    metric, amount = request.node.callspec.params["gateways"]
    left = 60 - time.time() % 60
    if left < SECONDS + 4:                       # one window for the whole run
        time.sleep(left + 0.5)
    token = idp.mint("hammer", claims=DEVELOPER, audience=AUDIENCE)
    admitted = asyncio.run(_hammer([gw.url for gw in gateways], token))
    used = len(admitted) if metric == "requests" else sum(u["total_tokens"] for u in admitted)
    assert used <= amount
    if metric == "requests":                     # every process may hold a lease of a tenth at the end
        assert used >= amount - PROCESSES * math.ceil(amount / 10)
