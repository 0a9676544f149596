"""The one log line of a data-plane request names what served it: the model, the account and deployment
that answered, how many targets were tried, and the status. Deployment names are the operator's: they
reach the gateway's log, never a caller."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import requests

from sandbox.emulator import AzureOpenAIEmulator, Fault
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from tests.harness import NewWorld, World, accounts_config, emulator_running
from tests.manage.conftest import wait_until

DEPLOYMENT = {"aoai-east": "east-dep", "aoai-west": "west-dep"}


@pytest.fixture(scope="module")
def east(loop: BackgroundLoop) -> Iterator[AzureOpenAIEmulator]:
    with emulator_running(loop, 0.005) as server:
        yield server


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
          east: AzureOpenAIEmulator) -> Iterator[World]:
    config = accounts_config(idp, {"aoai-east": east.url, "aoai-west": emulator.url},
                             {"gpt-4o": list(DEPLOYMENT.items())})
    with new_world(config=config, tokens={"alice": None},
                   upstreams={"aoai-east": east, "aoai-west": emulator}) as world:
        yield world


def log_line(world: World, request_id: str) -> str:
    found: list[str] = []

    def logged() -> bool:
        found[:] = [line for line in world.logs().splitlines() if f"request_id={request_id} " in line]
        return bool(found)

    assert wait_until(logged, seconds=10), world.logs()
    [line] = found
    return line


# case -> (faults per account, stream, what the log line says, the caller's status)
CASES = {
    "first-target-answers": ({}, False, "account=aoai-east deployment=east-dep attempts=1", 200),
    "failover-after-500": ({"aoai-east": [500]}, False, "account=aoai-west deployment=west-dep attempts=2",
                           200),
    "stream-failover-after-500": ({"aoai-east": [500]}, True,
                                  "account=aoai-west deployment=west-dep attempts=2", 200),
    "upstream-refuses-the-request": ({"aoai-east": [400]}, False,
                                     "account=aoai-east deployment=east-dep attempts=1", 400),
    "every-target-fails": ({"aoai-east": [500], "aoai-west": [503]}, False,
                           "account=- deployment=- attempts=2", 502),
}


@pytest.mark.parametrize(("faults", "stream", "logged", "status"), CASES.values(), ids=CASES.keys())
def test_the_log_line_names_the_account_deployment_and_attempts(
        world: World, faults: dict[str, list[int]], stream: bool, logged: str, status: int) -> None:
    for account, statuses in faults.items():
        world.upstreams[account].faults.extend(
            Fault(status=s, deployment=DEPLOYMENT[account], message="deployment {deployment} is unhappy")
            for s in statuses)
    request_id = uuid.uuid4().hex
    try:
        answer = requests.post(f"{world.url}/v1/chat/completions", timeout=30, headers={
            "Authorization": f"Bearer {world.token}", "x-request-id": request_id},
            data=json.dumps({"model": "gpt-4o", "stream": stream,
                             "messages": [{"role": "user", "content": "hi"}]}))
    finally:
        for upstream in world.upstreams.values():
            upstream.faults.clear()
    assert answer.status_code == status, answer.text

    line = log_line(world, request_id)
    assert f"model='gpt-4o' {logged} status={status} " in line, line
    seen = answer.text + json.dumps(dict(answer.headers))
    assert not any(dep in seen for dep in DEPLOYMENT.values()), seen
