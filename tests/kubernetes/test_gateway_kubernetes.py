"""End to end, as the gateway runs in a pod: the openai SDK -> the real gateway process -> the emulator,
with accounts configured by tenant and client id only. The gateway finds the API server through
KUBERNETES_SERVICE_HOST and _PORT, its namespace in the file the kubelet writes beside its token, its
service account in GATEWAY_KUBERNETES_SERVICE_ACCOUNT (the Deployment fills it from the Downward API),
mints a token for api://AzureADTokenExchange through the TokenRequest API, and exchanges it at the fake
Entra, which checks issuer, subject and audience against the app's federated credential and the
cluster's published keys. The AKS way (a projected token file) rides in the same world.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from sandbox.azurite import Azurite
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.entra import FakeEntra, FederatedCredential, Signer
from sandbox.idp import DevIdentityProvider
from sandbox.kubernetes import FakeKubernetes, subject
from sandbox.loop import BackgroundLoop
from tests.harness import World, sandbox_config, start_world
from tests.upstream.helpers import CLIENT, TENANT, TLSFiles

POD = ("ai", "gateway")
MISMATCHED = "55555555-5555-5555-5555-555555555555"
PROJECTED = "66666666-6666-6666-6666-666666666666"


def pod_directory(root: Path, kube: FakeKubernetes, tls: TLSFiles) -> Path:
    """What the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount, and the AKS webhook's
    projected token beside it."""
    directory = root / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text(kube.pod_token(*POD))
    (directory / "namespace").write_text(POD[0])
    shutil.copy(tls.ca_file, directory / "ca.crt")
    (directory / "azure-identity-token").write_text(kube.projected_token(*POD))
    return directory


def account(name: str, client_id: str, entra: FakeEntra, emulator: AzureOpenAIEmulator,
            assertion: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "kind": "azure-openai", "endpoint": emulator.url,
            "auth": {"type": "workload-identity", "tenant_id": TENANT, "client_id": client_id,
                     "authority_host": entra.url, "assertion": assertion}}


@pytest.fixture(scope="module")
def world(azurite: Azurite, idp: DevIdentityProvider, loop: BackgroundLoop, tls: TLSFiles,
          signers: dict[str, Signer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    entra = FakeEntra(ssl_context=tls.server, client_ssl=tls.client, signer=signers["entra"])
    kube = FakeKubernetes(ssl_context=tls.server, signer=signers["kube"])
    emulator = AzureOpenAIEmulator(api_key=None, bearer_check=entra.bearer_check())
    for server in (entra, kube, emulator):
        loop.run(server.start())
    pod = pod_directory(tmp_path_factory.mktemp("pod"), kube, tls)
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, subject(*POD))])
    entra.add_app(TENANT, PROJECTED, federated=[FederatedCredential(kube.issuer, subject(*POD))])
    entra.add_app(TENANT, MISMATCHED,     # the service account's name in the wrong case
                  federated=[FederatedCredential(kube.issuer, "system:serviceaccount:ai:Gateway")])
    token_request = {"source": "kubernetes", "token_path": str(pod / "token"), "ca_path": str(pod / "ca.crt")}
    doc = sandbox_config(idp, emulator)
    doc["accounts"] = [account("emulator", CLIENT, entra, emulator, token_request),
                       account("mismatched", MISMATCHED, entra, emulator, token_request),
                       account("projected", PROJECTED, entra, emulator,
                               {"source": "token-file", "path": str(pod / "azure-identity-token")})]
    for model, target in (("broken", "mismatched"), ("via-file", "projected")):
        doc["models"].append({"name": model, "targets": [{"account": target, "deployment": "gpt-4o-dep"}]})
        doc["collaborators"].append({"resource": f"model:{model}", "principal": "identity:developers",
                                     "role": "viewer"})
    env = {"SSL_CERT_FILE": tls.ca_file, "GATEWAY_AUTHORITY_HOSTS": entra.url,
           "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(kube.port),
           "GATEWAY_CREDENTIAL_FILE_DIRS": str(pod), "GATEWAY_KUBERNETES_SERVICE_ACCOUNT": POD[1]}
    with start_world(azurite, idp, emulator, tmp_path_factory.mktemp("gw-k8s"), config=doc, env=env,
                     upstreams={"entra": entra, "kube": kube}) as world:
        yield world
    for server in (emulator, kube, entra):
        loop.run(server.stop())


def chat(world: World, model: str) -> str | None:
    token = world.idp.mint("alice", claims={"groups": ["developers"]}, audience="api://ai-gateway")
    sdk = openai.OpenAI(base_url=world.url + "/v1", api_key=token, max_retries=0)
    answer = sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return answer.choices[0].message.content


def issued(world: World, client_id: str) -> list[dict[str, Any]]:
    return [r for r in world.upstreams["entra"].requests
            if r["client_id"] == client_id and r["outcome"] == "issued"]


def test_token_request_round_trip_with_the_pod_s_own_service_account(world: World) -> None:
    for _ in range(3):
        assert chat(world, "gpt-4o")
    kube: FakeKubernetes = world.upstreams["kube"]
    asked = [r for r in kube.requests if r["caller"] == subject(*POD)]
    assert asked[0] == {"namespace": "ai", "service_account": "gateway", "caller": subject(*POD)}
    assert len(issued(world, CLIENT)) == 1, "the Entra token is cached across requests"
    forwarded = {k.lower(): v for k, v in world.emulator.requests[-1].headers.items()}
    assert forwarded["authorization"].startswith("Bearer ") and "api-key" not in forwarded


def test_projected_token_file_round_trip(world: World) -> None:
    assert chat(world, "via-file")
    assert len(issued(world, PROJECTED)) == 1


def test_subject_mismatch_is_a_503_naming_namespace_and_service_account(world: World) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        chat(world, "broken")
    assert caught.value.status_code == 503
    body = caught.value.body
    message = body["message"] if isinstance(body, dict) else str(body)
    assert "account mismatched: Entra refused the client assertion (AADSTS700213)" in message
    assert (f"no federated credential on app {MISMATCHED} matches issuer '{world.upstreams['kube'].issuer}' "
            "and subject 'system:serviceaccount:ai:gateway'") in message
    assert "subject matching is case-sensitive" in message
    assert ("the gateway presents system:serviceaccount:ai:gateway (auth.assertion.namespace and "
            "service_account, which default to the pod's own)") in message


def test_logs_hold_no_token(world: World) -> None:
    test_token_request_round_trip_with_the_pod_s_own_service_account(world)
    with pytest.raises(openai.APIStatusError):
        chat(world, "broken")
    assert "eyJ" not in world.logs()
