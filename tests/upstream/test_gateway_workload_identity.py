"""End to end: the openai SDK -> the real gateway process -> the emulator, with a workload-identity
account whose client assertion is the managed identity's (the keyless way inside Azure Functions).

The gateway reaches the fake Entra over HTTPS, trusting the test CA through SSL_CERT_FILE, and finds
the fake managed-identity endpoint through IDENTITY_ENDPOINT and IDENTITY_HEADER, as in App Service.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from sandbox.azurite import Azurite
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.entra import FakeEntra, FederatedCredential, Signer
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from sandbox.managed_identity import ManagedIdentityEndpoint
from tests.harness import World, sandbox_config, start_world
from tests.upstream.helpers import CLIENT, MI_CLIENT, TENANT, TLSFiles

OTHER_CLIENT = "44444444-4444-4444-4444-444444444444"


@pytest.fixture(scope="module")
def world(azurite: Azurite, idp: DevIdentityProvider, loop: BackgroundLoop, tls: TLSFiles,
          signers: dict[str, Signer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    entra = FakeEntra(ssl_context=tls.server, client_ssl=tls.client, signer=signers["entra"])
    loop.run(entra.start())
    endpoint = ManagedIdentityEndpoint(entra)
    loop.run(endpoint.start())
    emulator = AzureOpenAIEmulator(api_key=None, bearer_check=entra.bearer_check())
    loop.run(emulator.start())
    identity = entra.add_identity(TENANT, MI_CLIENT)
    endpoint.attach(identity)
    issuer = entra.issuer(TENANT)
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(issuer, identity.principal_id)])
    entra.add_app(TENANT, OTHER_CLIENT, federated=[FederatedCredential(issuer, "someone-else")])

    def wi(client_id: str) -> dict[str, Any]:
        return {"type": "workload-identity", "tenant_id": TENANT, "client_id": client_id,
                "authority_host": entra.url,
                "assertion": {"source": "managed-identity", "client_id": MI_CLIENT}}

    doc = sandbox_config(idp, emulator)
    doc["accounts"] = [{"name": "emulator", "kind": "azure-openai", "endpoint": emulator.url,
                        "auth": wi(CLIENT)},
                       {"name": "mismatched", "kind": "azure-openai", "endpoint": emulator.url,
                        "auth": wi(OTHER_CLIENT)}]
    doc["models"].append({"name": "broken",
                          "targets": [{"account": "mismatched", "deployment": "gpt-4o-dep"}]})
    doc["collaborators"].append({"resource": "model:broken", "principal": "identity:developers",
                                 "role": "viewer"})
    env = {"SSL_CERT_FILE": tls.ca_file, "GATEWAY_AUTHORITY_HOSTS": entra.url, **endpoint.env}
    with start_world(azurite, idp, emulator, tmp_path_factory.mktemp("gw-wi"), config=doc, env=env,
                     upstreams={"entra": entra, "endpoint": endpoint}) as world:
        yield world
    loop.run(emulator.stop())
    loop.run(endpoint.stop())
    loop.run(entra.stop())


def client(world: World) -> openai.OpenAI:
    token = world.idp.mint("alice", claims={"groups": ["developers"]}, audience="api://ai-gateway")
    return openai.OpenAI(base_url=world.url + "/v1", api_key=token, max_retries=0)


def test_workload_identity_round_trip(world: World) -> None:
    sdk = client(world)
    for _ in range(3):
        answer = sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content
    entra, endpoint = world.upstreams["entra"], world.upstreams["endpoint"]
    issued = [r for r in entra.requests if r["client_id"] == CLIENT and r["outcome"] == "issued"]
    assert len(issued) == 1, "the token is cached across requests"
    assert endpoint.requests[0] == {"client_id": MI_CLIENT, "resource": "api://AzureADTokenExchange"}
    forwarded = {k.lower(): v for k, v in world.emulator.requests[-1].headers.items()}
    assert forwarded["authorization"].startswith("Bearer ") and "api-key" not in forwarded


def test_federation_mismatch_is_a_503_naming_the_subject(world: World) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client(world).chat.completions.create(model="broken", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 503
    message = caught.value.body["message"] if isinstance(caught.value.body, dict) else str(caught.value.body)
    assert "account mismatched: Entra refused the client assertion (AADSTS700213)" in message
    assert f"no federated credential on app {OTHER_CLIENT} matches issuer" in message
    assert "subject matching is case-sensitive" in message


def test_logs_hold_no_token_or_assertion(world: World) -> None:
    test_workload_identity_round_trip(world)
    assert "eyJ" not in world.logs()
