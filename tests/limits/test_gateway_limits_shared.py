"""Accuracy across instances: four gateway processes sharing one counter store (Azurite, or a
redis-server) serve one rule to 64 concurrent clients. Admitted requests and tokens never exceed a
window's limit, and what is left unadmitted is within the bound the leases allow (the units leased but
unspent at the window's end: at most a tenth of the limit per process). A budget is never exceeded by
64 concurrent streams.
"""

from __future__ import annotations

import asyncio
import json
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
from tests.limits.conftest import RedisServer

PROCESSES = 4
CLIENTS = 64
SECONDS = 8.0
MESSAGES = [{"role": "user", "content": "How are you today?"}]
BUDGET_USD = 2.0
PRICE = {"model": "gpt-4o", "input": 1000.0, "output": 1000.0}   # USD per million: 1,000 micro-USD a token


def _rules(metric: str, amount: float) -> dict[str, Any]:
    when = {"models": {"in": ["gpt-4o"]}}
    if metric == "usd":
        return {"budgets": [{"name": "shared", "when": when, "usd": {"day": amount}}], "prices": [PRICE]}
    return {"rate_limits": [{"name": "shared", "when": when, "limits": [{metric: amount, "per": "minute"}]}]}


@pytest.fixture
def gateways(azurite: Azurite, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
             redis_server: RedisServer, tmp_path: Path,
             request: pytest.FixtureRequest) -> Iterator[list[GatewayProcess]]:
    store, metric, amount = request.param
    tables = Tables(azurite, unique_prefix())
    tables.apply(sandbox_config(idp, emulator, **_rules(metric, amount)))
    env = gateway_env(tables, GATEWAY_LIMITS_STORE=store)
    if store == "redis":        # keys carry the table prefix, so runs stay apart on one server
        env["GATEWAY_LIMITS_REDIS_URL"] = redis_server.url
    started = [GatewayProcess(env, tmp_path / f"gateway-{i}.log") for i in range(PROCESSES)]
    try:
        yield started
    finally:
        for gw in started:
            gw.stop()


def _usage_of_stream(text: str) -> dict[str, Any]:
    for line in text.splitlines():
        if line.startswith("data: {") and '"usage":{' in line.replace(" ", ""):
            chunk = json.loads(line[len("data: "):])
            if chunk.get("usage"):
                return chunk["usage"]
    raise AssertionError("the stream carried no usage")


async def _hammer(urls: list[str], token: str, stream: bool = False) -> list[dict[str, Any]]:
    """Every client sends requests one after another, round robin over the gateways, for SECONDS;
    the usage of every admitted answer."""
    admitted: list[dict[str, Any]] = []
    deadline = time.monotonic() + SECONDS
    headers = {"Authorization": f"Bearer {token}"}
    body: dict[str, Any] = {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 20}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}

    async def client(session: aiohttp.ClientSession, n: int) -> None:
        while time.monotonic() < deadline:
            url = urls[n % len(urls)] + "/v1/chat/completions"
            n += 1
            async with session.post(url, json=body, headers=headers) as answer:
                if answer.status == 200:
                    admitted.append(_usage_of_stream(await answer.text()) if stream
                                    else (await answer.json())["usage"])
                    continue
                error = (await answer.json())["error"]["code"]
                assert answer.status == 429 and error in ("rate_limit_exceeded", "insufficient_quota"), error
                if error == "insufficient_quota":
                    return

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(client(session, n) for n in range(CLIENTS)))
    return admitted


@pytest.mark.parametrize("gateways", [("table", "requests", 200), ("table", "tokens", 3000),
                                      ("redis", "requests", 200)], indirect=True,
                         ids=["table-requests", "table-tokens", "redis-requests"])
def test_one_rule_holds_across_four_processes(gateways: list[GatewayProcess], idp: DevIdentityProvider,
                                              request: pytest.FixtureRequest) -> None:
    _, metric, amount = request.node.callspec.params["gateways"]
    left = 60 - time.time() % 60
    if left < SECONDS + 4:                       # one window for the whole run
        time.sleep(left + 0.5)
    token = idp.mint("hammer", claims=DEVELOPER, audience=AUDIENCE)
    admitted = asyncio.run(_hammer([gw.url for gw in gateways], token))
    used = len(admitted) if metric == "requests" else sum(u["total_tokens"] for u in admitted)
    assert used <= amount
    if metric == "requests":                     # every process may hold a lease of a tenth at the end
        assert used >= amount - PROCESSES * math.ceil(amount / 10)


@pytest.mark.parametrize("gateways", [("table", "usd", BUDGET_USD)], indirect=True, ids=["table-budget"])
def test_a_budget_is_never_exceeded_by_concurrent_streams(gateways: list[GatewayProcess],
                                                         idp: DevIdentityProvider) -> None:
    token = idp.mint("spender", claims=DEVELOPER, audience=AUDIENCE)
    admitted = asyncio.run(_hammer([gw.url for gw in gateways], token, stream=True))
    spent = sum(u["total_tokens"] for u in admitted) * 1000      # micro-USD, at one price for both
    assert admitted, "no stream was admitted"
    assert spent <= BUDGET_USD * 1_000_000
