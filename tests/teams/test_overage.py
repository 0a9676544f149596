"""Entra group overage: a token whose `groups` were left out makes a condition on groups unknown (no match,
and explain says so with the fix); with `groups_from_graph: true` the gateway reads the groups from
Microsoft Graph (here the Graph fake, trusting the fake Entra's tokens) with its own managed identity,
caches them per user, and treats a Graph failure as no match, without logging any token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.entra import FakeEntra, Signer
from sandbox.graph import GRAPH_RESOURCE, FakeGraph
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from sandbox.managed_identity import ManagedIdentityEndpoint
from tests.harness import AUDIENCE, NewWorld, World, sandbox_config
from tests.manage.conftest import ROOT_ADMIN
from tests.upstream.conftest import signers, tls  # noqa: F401  (pytest finds fixtures by name)
from tests.upstream.helpers import MI_CLIENT, TENANT, TLSFiles

GROUP = "0c0ffee0-0000-0000-0000-000000000003"
OVERAGE = {"_claim_names": {"groups": "src1"},
           "_claim_sources": {"src1": {"endpoint": "https://graph.windows.net/t/users/u/getMemberObjects"}}}


def oid(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


def overage_claims(user_oid: str) -> dict[str, Any]:
    return {"oid": user_oid, **OVERAGE}


def config(idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, *, graph: bool) -> dict[str, Any]:
    doc = sandbox_config(idp, emulator)
    doc["identity_providers"][0]["groups_from_graph"] = graph
    doc["external_identities"].append({"name": "big-group", "identity_provider": "dev",
                                       "claims": {"groups": GROUP}})
    doc["collaborators"] = [{"resource": "model:gpt-4o", "principal": "identity:big-group", "role": "viewer"}]
    return doc


@pytest.fixture(scope="module")
def plain(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> Iterator[World]:
    with new_world(config=config(idp, emulator, graph=False), env={"GATEWAY_ADMINS": ROOT_ADMIN}) as world:
        yield world


@pytest.fixture(scope="module")
def graphed(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
            loop: BackgroundLoop, tls: TLSFiles, signers: dict[str, Signer]) -> Iterator[World]:  # noqa: F811
    entra = FakeEntra(ssl_context=tls.server, client_ssl=tls.client, signer=signers["entra"])
    entra.resources.add(GRAPH_RESOURCE)
    loop.run(entra.start())
    endpoint = ManagedIdentityEndpoint(entra)
    loop.run(endpoint.start())
    endpoint.attach(entra.add_identity(TENANT, MI_CLIENT))
    graph = FakeGraph(entra, page_size=2)
    loop.run(graph.start())
    env = {**endpoint.env, "AZURE_CLIENT_ID": MI_CLIENT, "GATEWAY_GRAPH_URL": graph.url,
           "GATEWAY_ADMINS": ROOT_ADMIN}
    try:
        with new_world(config=config(idp, emulator, graph=True), env=env,
                       upstreams={"graph": graph}) as world:
            yield world
    finally:
        loop.run(graph.stop())
        loop.run(endpoint.stop())
        loop.run(entra.stop())


def chat(world: World, token: str) -> int:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    return requests.post(f"{world.url}/v1/chat/completions", json=body,
                         headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code


def mint(world: World, sub: str, claims: dict[str, Any]) -> str:
    return world.idp.mint(sub, claims=claims, audience=AUDIENCE)


def explain(world: World, token: str) -> dict[str, Any]:
    answer = world.api("root").post("explain", {"token": token, "resource": "model:gpt-4o"})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def groups_check(report: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in report["checks"] if c["check"] == "groups"), None)


@pytest.mark.parametrize(("claims", "status"), [
    ({"groups": [GROUP]}, 200),                  # the groups in the token: the condition holds
    ({"groups": ["another"]}, 404),
    (overage_claims(oid(1)), 404),               # left out: unknown, so no match
])
def test_without_graph_an_overage_token_does_not_match(plain: World, claims: dict[str, Any],
                                                        status: int) -> None:
    assert chat(plain, mint(plain, "quinn", claims)) == status


def test_explain_calls_the_overage_condition_unknown_and_names_the_fix(plain: World) -> None:
    report = explain(plain, mint(plain, "quinn", overage_claims(oid(1))))
    assert not report["allowed"] and report["identities"] == []
    check = groups_check(report)
    assert check is not None and not check["passed"]
    for words in ("identity:big-group", "unknown", "Entra group overage", "emit groups as app roles",
                  "group filtering", "groups_from_graph: true"):
        assert words in check["detail"]
    plain_token = explain(plain, mint(plain, "quinn", {"groups": [GROUP]}))
    assert plain_token["allowed"] and groups_check(plain_token) is None


def test_graph_resolves_the_groups_and_caches_them_per_user(graphed: World) -> None:
    graph: FakeGraph = graphed.upstreams["graph"]
    graph.members[oid(2)] = [f"0c0ffee0-0000-0000-0000-00000000000{i}" for i in range(1, 6)]   # 3 pages
    before = len(graph.calls)
    assert chat(graphed, mint(graphed, "gina", overage_claims(oid(2)))) == 200
    calls = graph.calls[before:]
    assert len(calls) == 3 and all(c.authorized and c.user == oid(2) for c in calls)
    assert all(c.body == {"securityEnabledOnly": False} for c in calls)
    # another token of the same user (the verified-token cache cannot help): Graph is not asked again
    assert chat(graphed, mint(graphed, "gina", overage_claims(oid(2)))) == 200
    assert len(graph.calls) == before + 3
    report = explain(graphed, mint(graphed, "gina", overage_claims(oid(2))))
    assert report["allowed"] and report["identities"] == ["big-group"]
    assert groups_check(report) == {"check": "groups", "passed": True,
                                    "detail": "the token left its groups out; 5 read from Microsoft Graph"}


def test_a_user_outside_the_group_does_not_match(graphed: World) -> None:
    graphed.upstreams["graph"].members[oid(3)] = ["0c0ffee0-0000-0000-0000-000000000009"]
    assert chat(graphed, mint(graphed, "olaf", overage_claims(oid(3)))) == 404


@pytest.mark.parametrize(("user", "claims", "setup", "words"), [
    ("fay", overage_claims(oid(4)), "failing", "Graph answered HTTP 503"),
    ("nat", {"oid": "../../groups", **OVERAGE}, None, "no oid claim holding an object id"),
    ("lee", overage_claims(oid(5)), "elsewhere", "next page link points away from the Graph host"),
])
def test_a_graph_failure_is_no_match_and_logs_no_token(graphed: World, user: str, claims: dict[str, Any],
                                                       setup: str | None, words: str) -> None:
    graph: FakeGraph = graphed.upstreams["graph"]
    user_oid = str(claims["oid"])
    graph.members[user_oid] = [GROUP, "0c0ffee0-0000-0000-0000-000000000001",
                               "0c0ffee0-0000-0000-0000-0000000000f0"]     # two pages
    graph.failing = setup == "failing"
    graph.next_link_host = "127.0.0.2:9" if setup == "elsewhere" else None
    try:
        token = mint(graphed, user, claims)
        assert chat(graphed, token) == 404
        check = groups_check(explain(graphed, token))
    finally:
        graph.failing, graph.next_link_host = False, None
    assert check is not None and not check["passed"] and words in check["detail"]
    assert "unknown" in check["detail"] and "does not match" in check["detail"]
    logs = graphed.logs()
    secrets = [token, *(c.authorization.removeprefix("Bearer ") for c in graph.calls)]
    assert not [s for s in secrets if s and s in logs]
    if setup:
        assert words in logs
