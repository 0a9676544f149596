"""Usage carries cost: a real gateway on the emulator prices what callers used (cached input included),
and `python -m shared usage` and GET /manage/usage report requests, tokens and USD, per user, identity,
model and day; a caller who is not an admin sees only their own."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from sandbox.azurite import Azurite
from sandbox.emulator import Fault
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from tests.harness import ROOT, World, emulator_running, sandbox_config, start_world

ADMIN = "user:dev/root"
GPT_4O = (2.5, 1.25, 10.0)          # the built-in price (USD per million: input, cached input, output)
MINI = (0.15, 0.075, 0.6)           # gpt-4o-mini's, found by the deployment's name
CACHED_ANSWER = json.dumps({
    "id": "chatcmpl-cached", "object": "chat.completion", "created": 1, "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
              "prompt_tokens_details": {"cached_tokens": 400}}}).encode()


def micro(rate: tuple[float, float, float], prompt: int, output: int, cached: int = 0) -> float:
    return (prompt - cached) * rate[0] + cached * rate[1] + output * rate[2]


@pytest.fixture(scope="module")
def world(azurite: Azurite, idp: DevIdentityProvider, loop: BackgroundLoop,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with emulator_running(loop) as emulator:
        base = sandbox_config(idp, emulator)
        cheap = {"name": "cheap", "targets": [{"account": "emulator", "deployment": "gpt-4o-mini"}]}
        grant = {"resource": "model:cheap", "principal": "identity:developers", "role": "viewer"}
        config = {**base, "models": [*base["models"], cheap],
                  "collaborators": [*base["collaborators"], grant]}
        developer = {"groups": ["developers"]}
        with start_world(azurite, idp, emulator, tmp_path_factory.mktemp("gw"), config=config,
                         env={"GATEWAY_ADMINS": ADMIN},
                         tokens={"alice": developer, "bob": developer}) as w:
            yield w


@pytest.fixture(scope="module")
def traffic(world: World) -> dict[str, Any]:
    """alice: two gpt-4o chats (one answered with cached input), one embedding (an unpriced model);
    bob: one chat on `cheap`, priced as gpt-4o-mini by its deployment's name."""
    def client(sub: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=world.url + "/v1", api_key=world.tokens[sub], max_retries=0)

    messages = [{"role": "user", "content": "How much does this cost me"}]
    with client("alice") as alice, client("bob") as bob:
        plain = alice.chat.completions.create(model="gpt-4o", messages=messages).usage
        world.emulator.faults.append(Fault(body=CACHED_ANSWER, deployment="gpt-4o-dep"))
        cached = alice.chat.completions.create(model="gpt-4o", messages=messages).usage
        assert cached.prompt_tokens_details.cached_tokens == 400
        embedded = alice.embeddings.create(model="embed", input="one two three").usage
        cheap = bob.chat.completions.create(model="cheap", messages=messages).usage
    return {"alice_gpt4o": micro(GPT_4O, plain.prompt_tokens, plain.completion_tokens)
            + micro(GPT_4O, 1000, 100, 400),
            "alice_tokens": plain.total_tokens + 1100, "embedded": embedded.prompt_tokens,
            "bob_cheap": micro(MINI, cheap.prompt_tokens, cheap.completion_tokens)}


def report(world: World, sub: str, **params: str) -> dict[str, Any]:
    answer = world.api(sub).get("usage", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def close_to(got_usd: float, exact_micro: float) -> bool:
    """Rounded up to whole micro-USD once per flush (a test's traffic may span two)."""
    got = round(got_usd * 1_000_000)
    return math.ceil(exact_micro) <= got <= math.ceil(exact_micro) + 2


def test_an_admin_sees_everyones_cost(world: World, traffic: dict[str, Any]) -> None:
    body = report(world, "root", group_by="user,model")
    assert body["all_users"] is True and body["group_by"] == ["principal", "model"]
    rows = {(r["principal"], r["model"]): r for r in body["data"]}
    gpt4o = rows.pop(("user:dev/alice", "gpt-4o"))
    assert gpt4o["requests"] == 2 and gpt4o["cached_tokens"] == 400
    assert gpt4o["total_tokens"] == traffic["alice_tokens"]
    assert close_to(gpt4o["cost_usd"], traffic["alice_gpt4o"]) and gpt4o["unpriced_requests"] == 0
    embed = rows.pop(("user:dev/alice", "embed"))
    assert (embed["requests"], embed["prompt_tokens"], embed["cost_usd"], embed["unpriced_requests"]) == (
        1, traffic["embedded"], 0, 1)
    cheap = rows.pop(("user:dev/bob", "cheap"))
    assert close_to(cheap["cost_usd"], traffic["bob_cheap"])
    assert rows == {}


def test_a_caller_sees_only_their_own(world: World, traffic: dict[str, Any]) -> None:
    body = report(world, "bob", group_by="user,identity")
    assert body["all_users"] is False
    assert [(r["principal"], r["identity"], r["requests"]) for r in body["data"]] == [
        ("user:dev/bob", "developers", 1)]
    assert report(world, "carol")["data"] == []


@pytest.mark.parametrize(("params", "param"), [
    ({"group_by": "user,colour"}, "group_by"),
    ({"since": "last tuesday"}, "since"),
    ({"until": "soon"}, "until"),
    ({"since": "99999999999d"}, "since"),
    ({"sort": "cost"}, "sort"),
])
def test_bad_parameters_are_named(world: World, params: dict[str, str], param: str) -> None:
    answer = world.api("root").get("usage", params=params)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param


def test_days_outside_the_range_hold_nothing(world: World, traffic: dict[str, Any]) -> None:
    assert report(world, "root", since="2099-01-01")["data"] == []
    assert report(world, "root", until="2000-01-01")["data"] == []
    assert len(report(world, "root", since="1d", group_by="day")["data"]) == 1


def usage_cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared", "usage", *args], cwd=ROOT, text=True,
                          capture_output=True, env={**os.environ, **world.env}, timeout=60, check=False)


def test_the_cli_reports_what_manage_reports(world: World, traffic: dict[str, Any]) -> None:
    expected = report(world, "root", group_by="model,user")["data"]
    done = usage_cli(world, "--by", "model,user", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected
    text = usage_cli(world, "--by", "model")
    header, *lines = text.stdout.splitlines()
    assert header.split() == ["model", "requests", "prompt_tokens", "cached_tokens", "completion_tokens",
                              "total_tokens", "cost_usd", "unpriced"]
    gpt4o = next(line.split() for line in lines if line.startswith("gpt-4o"))
    assert gpt4o[-2] == f"{next(r['cost_usd'] for r in expected if r['model'] == 'gpt-4o'):.6f}"
