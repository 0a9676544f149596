"""workload-identity accounts: each assertion source, and each federation mismatch in its own words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.entra import FakeEntra, FederatedCredential, Signer
from sandbox.kubernetes import FakeKubernetes
from sandbox.managed_identity import ManagedIdentityEndpoint
from shared.errors import Unavailable
from shared.upstream.credentials import Credentials
from tests.upstream.helpers import CLIENT, MI_CLIENT, TENANT, TLSFiles, account, chat

SUBJECT = "system:serviceaccount:ai:gateway"


def wi_account(entra: FakeEntra, assertion: dict[str, Any], endpoint: str = "https://acme.openai.azure.com",
               **extra: str):
    return account({"type": "workload-identity", "tenant_id": TENANT, "client_id": CLIENT,
                    "assertion": assertion, "authority_host": entra.url, **extra}, endpoint=endpoint)


async def failure(credentials: Credentials, acct) -> tuple[str, dict[str, object]]:
    with pytest.raises(Unavailable) as caught:
        await credentials.for_account(acct).auth_headers()
    assert caught.value.status == 503
    return caught.value.message, credentials.status()[acct.name]


# --- the three assertion sources --------------------------------------------------------------------


async def test_managed_identity_as_federated_credential(
        entra: FakeEntra, identity_endpoint: ManagedIdentityEndpoint, aoai: AzureOpenAIEmulator,
        make_credentials: Callable[..., Credentials]) -> None:
    identity = entra.add_identity(TENANT, MI_CLIENT)
    identity_endpoint.attach(identity)
    fic = FederatedCredential(entra.issuer(TENANT), identity.principal_id)
    entra.add_app(TENANT, CLIENT, federated=[fic])
    acct = wi_account(entra, {"source": "managed-identity", "client_id": MI_CLIENT}, aoai.url)
    credentials = make_credentials()
    headers = await credentials.for_account(acct).auth_headers()
    assert (await chat(aoai.url, headers))[0] == 200
    assert identity_endpoint.requests == [{"client_id": MI_CLIENT, "resource": "api://AzureADTokenExchange"}]
    assert entra.requests[-1]["kind"] == "assertion" and entra.requests[-1]["outcome"] == "issued"
    status = credentials.status()["aoai"]
    assert status["auth"] == "workload-identity" and status["error"] is None
    assert isinstance(status["expires_on"], int)


async def test_managed_identity_assertion_failures_name_the_assertion_client_id(
        entra: FakeEntra, identity_endpoint: ManagedIdentityEndpoint,
        make_credentials: Callable[..., Credentials]) -> None:
    acct = wi_account(entra, {"source": "managed-identity", "client_id": MI_CLIENT})
    message, status = await failure(make_credentials(), acct)
    assert "the managed identity endpoint refused user-assigned identity 2222" in message
    assert "check auth.assertion.client_id" in message and status["field"] == "assertion.client_id"
    assert entra.requests == []

    identity_endpoint.attach(entra.add_identity(TENANT, MI_CLIENT))
    await identity_endpoint.stop()
    from azure.identity.aio import ManagedIdentityCredential

    def no_retries(client_id: str | None) -> ManagedIdentityCredential:   # the endpoint is gone
        return ManagedIdentityCredential(client_id=client_id, retry_total=0)

    message, status = await failure(make_credentials(managed_identity=no_retries), acct)
    assert "cannot reach the managed identity endpoint" in message


async def test_token_file(entra: FakeEntra, kube: FakeKubernetes, aoai: AzureOpenAIEmulator,
                          kube_files: Callable[..., str],
                          make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, SUBJECT)])
    path = kube_files(kube.projected_token("ai", "gateway"))
    acct = wi_account(entra, {"source": "token-file", "path": path}, aoai.url)
    credentials = make_credentials()
    headers = await credentials.for_account(acct).auth_headers()
    assert (await chat(aoai.url, headers))[0] == 200


async def test_token_file_is_reread_for_each_assertion(
        entra: FakeEntra, kube: FakeKubernetes, kube_files: Callable[..., str],
        make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, SUBJECT)])
    path = kube_files(kube.projected_token("ai", "gateway"))
    acct = wi_account(entra, {"source": "token-file", "path": path})
    credentials = make_credentials()
    await credentials.for_account(acct).auth_headers()
    kube_files(kube.projected_token("ai", "rotated-away"))      # the kubelet rotates the file
    errors = await credentials.refresh_all([acct])
    assert "system:serviceaccount:ai:rotated-away" in str(errors["aoai"])
    # the token fetched first is still valid and still served
    assert (await credentials.for_account(acct).auth_headers())["Authorization"].startswith("Bearer ")


async def test_missing_token_file_names_the_path(entra: FakeEntra, tmp_path,
                                                 make_credentials: Callable[..., Credentials]) -> None:
    acct = wi_account(entra, {"source": "token-file", "path": str(tmp_path / "absent")})
    credentials = make_credentials()
    message, status = await failure(credentials, acct)
    assert "absent does not exist: check auth.assertion.path" in message
    assert status["field"] == "assertion.path"
    assert entra.requests == []


def k8s_assertion(kube: FakeKubernetes, tls: TLSFiles, token_path: str, **extra: str) -> dict[str, str]:
    return {"source": "kubernetes", "namespace": "ai", "service_account": "gateway",
            "api_server": kube.url, "token_path": token_path, "ca_path": tls.ca_file, **extra}


async def test_kubernetes_token_request(entra: FakeEntra, kube: FakeKubernetes, tls: TLSFiles,
                                        aoai: AzureOpenAIEmulator, kube_files: Callable[..., str],
                                        make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, SUBJECT)])
    pod_token = kube_files(kube.pod_token("ai", "gateway"), "pod-token")
    acct = wi_account(entra, k8s_assertion(kube, tls, pod_token), aoai.url)
    headers = await make_credentials().for_account(acct).auth_headers()
    assert (await chat(aoai.url, headers))[0] == 200
    assert kube.requests == [{"namespace": "ai", "service_account": "gateway", "caller": SUBJECT}]


async def test_kubernetes_in_cluster_defaults(entra: FakeEntra, kube: FakeKubernetes, tls: TLSFiles,
                                              kube_files: Callable[..., str],
                                              make_credentials: Callable[..., Credentials]) -> None:
    """api_server comes from KUBERNETES_SERVICE_HOST and _PORT, as inside a pod."""
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, SUBJECT)])
    pod_token = kube_files(kube.pod_token("ai", "gateway"), "pod-token")
    assertion = k8s_assertion(kube, tls, pod_token)
    del assertion["api_server"]
    environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(kube.port)}
    headers = await make_credentials(environ=environ).for_account(wi_account(entra, assertion)).auth_headers()
    assert headers["Authorization"].startswith("Bearer ")

    message, status = await failure(make_credentials(environ={}), wi_account(entra, assertion))
    assert "KUBERNETES_SERVICE_HOST" in message and status["field"] == "assertion.api_server"


async def test_kubernetes_refuses_the_pod_token(entra: FakeEntra, kube: FakeKubernetes, tls: TLSFiles,
                                                signers: dict[str, Signer], kube_files: Callable[..., str],
                                                make_credentials: Callable[..., Credentials]) -> None:
    forged = FakeKubernetes(ssl_context=tls.server, signer=signers["other"]).pod_token("ai", "gateway")
    acct = wi_account(entra, k8s_assertion(kube, tls, kube_files(forged, "pod-token")))
    message, status = await failure(make_credentials(), acct)
    assert "refused the pod's service-account token" in message and "HTTP 401" in message
    assert status["field"] == "assertion.token_path"


async def test_kubernetes_rbac_and_missing_service_account(
        entra: FakeEntra, kube: FakeKubernetes, tls: TLSFiles, kube_files: Callable[..., str],
        make_credentials: Callable[..., Credentials]) -> None:
    pod_token = kube_files(kube.pod_token("ai", "runner"), "pod-token")
    acct = wi_account(entra, k8s_assertion(kube, tls, pod_token))
    message, status = await failure(make_credentials(), acct)
    assert "may not create tokens for service account ai/gateway (HTTP 403" in message
    assert "serviceaccounts/token" in message and status["field"] == "assertion.service_account"

    kube.allow(("ai", "runner"), ("ai", "gateway"))        # allowed, but the account does not exist
    message, _ = await failure(make_credentials(), acct)
    assert "service account ai/gateway does not exist (HTTP 404" in message


async def test_kubernetes_untrusted_api_server(entra: FakeEntra, kube: FakeKubernetes, tls: TLSFiles,
                                               tmp_path, kube_files: Callable[..., str],
                                               make_credentials: Callable[..., Credentials]) -> None:
    import trustme

    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    pod_token = kube_files(kube.pod_token("ai", "gateway"), "pod-token")
    acct = wi_account(entra, k8s_assertion(kube, tls, pod_token, ca_path=str(other_ca)))
    message, status = await failure(make_credentials(), acct)
    assert "TLS certificate of the Kubernetes API server" in message and "is not trusted" in message
    assert status["field"] == "assertion.ca_path"


# --- federation mismatches: each names its own field ------------------------------------------------


@pytest.fixture
def token_file_account(entra: FakeEntra, kube: FakeKubernetes, kube_files: Callable[..., str]):
    def make(token: str | None = None, **extra: str):
        path = kube_files(token or kube.projected_token("ai", "gateway"))
        return wi_account(entra, {"source": "token-file", "path": path}, **extra)
    return make


async def test_issuer_mismatch(entra: FakeEntra, kube: FakeKubernetes, token_file_account,
                               make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential("https://oidc.example/cluster", SUBJECT)])
    message, status = await failure(make_credentials(), token_file_account())
    assert message.startswith("account aoai: Entra refused the client assertion (AADSTS700211): no federated "
                              f"credential on app {CLIENT} has issuer '{kube.issuer}'")
    assert "check the federated credential's issuer" in message
    assert status["field"] == "issuer"


async def test_subject_mismatch(entra: FakeEntra, kube: FakeKubernetes, token_file_account,
                                make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT,
                  federated=[FederatedCredential(kube.issuer, "system:serviceaccount:ai:Gateway")])
    message, status = await failure(make_credentials(), token_file_account())
    assert ("account aoai: Entra refused the client assertion (AADSTS700213): no federated credential on "
            f"app {CLIENT} matches issuer '{kube.issuer}' and subject '{SUBJECT}': check the federated "
            "credential's issuer and subject (subject matching is case-sensitive)") in message
    assert status["field"] == "subject"


async def test_subject_mismatch_with_kubernetes_names_namespace_and_service_account(
        entra: FakeEntra, kube: FakeKubernetes, tls: TLSFiles, kube_files: Callable[..., str],
        make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, "system:serviceaccount:x:y")])
    pod_token = kube_files(kube.pod_token("ai", "gateway"), "pod-token")
    message, _ = await failure(make_credentials(), wi_account(entra, k8s_assertion(kube, tls, pod_token)))
    assert "AADSTS700213" in message
    assert "auth.assertion.namespace and service_account" in message


async def test_audience_mismatch(entra: FakeEntra, kube: FakeKubernetes, token_file_account,
                                 make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT,
                  federated=[FederatedCredential(kube.issuer, SUBJECT, audiences=("api://Custom",))])
    message, status = await failure(make_credentials(), token_file_account())
    assert "(AADSTS700212)" in message and "accepts audience 'api://AzureADTokenExchange'" in message
    assert status["field"] == "audience"


async def test_combined_mismatch_code(entra: FakeEntra, kube: FakeKubernetes, token_file_account,
                                      make_credentials: Callable[..., Credentials]) -> None:
    entra.combined_fic_errors = True
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, "wrong")])
    message, status = await failure(make_credentials(), token_file_account())
    assert "(AADSTS70021)" in message
    assert f"issuer '{kube.issuer}', subject '{SUBJECT}', audience 'api://AzureADTokenExchange'" in message
    assert status["field"] == "issuer, subject, audience"


async def test_no_federated_credential(entra: FakeEntra, token_file_account,
                                       make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT)
    message, status = await failure(make_credentials(), token_file_account())
    assert "(AADSTS70025)" in message and "has no federated credentials: add one with issuer" in message
    assert status["field"] == "federated credential"


async def test_unknown_client_id(entra: FakeEntra, kube: FakeKubernetes, token_file_account,
                                 make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, "33333333-3333-3333-3333-333333333333",
                  federated=[FederatedCredential(kube.issuer, SUBJECT)])
    message, status = await failure(make_credentials(), token_file_account())
    assert "(AADSTS700016)" in message and f"no application with client id '{CLIENT}'" in message
    assert "check auth.client_id" in message and status["field"] == "client_id"


async def test_unknown_tenant(entra: FakeEntra, kube: FakeKubernetes, kube_files: Callable[..., str],
                              make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, SUBJECT)])
    acct = account({"type": "workload-identity", "tenant_id": "99999999-9999-9999-9999-999999999999",
                    "client_id": CLIENT, "authority_host": entra.url,
                    "assertion": {"source": "token-file",
                                  "path": kube_files(kube.projected_token("ai", "gateway"))}})
    message, status = await failure(make_credentials(), acct)
    assert "(AADSTS90002)" in message and "no tenant '99999999-9999-9999-9999-999999999999'" in message
    assert "check auth.tenant_id" in message and status["field"] == "tenant_id"


async def test_expired_assertion(entra: FakeEntra, kube: FakeKubernetes, token_file_account,
                                 make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, SUBJECT)])
    stale = kube.projected_token("ai", "gateway", lifetime=3600, issued_ago=7200)
    message, status = await failure(make_credentials(), token_file_account(stale))
    assert "(AADSTS700024)" in message and "is no longer rotated" in message
    assert status["field"] == "assertion.path"


async def test_assertion_signed_with_an_unpublished_key(
        entra: FakeEntra, kube: FakeKubernetes, signers: dict[str, Signer], tls: TLSFiles,
        token_file_account, make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, SUBJECT)])
    impostor = FakeKubernetes(ssl_context=tls.server, signer=signers["other"])
    impostor.port = kube.port                        # same iss, a key the issuer does not publish
    forged = impostor.projected_token("ai", "gateway")
    message, status = await failure(make_credentials(), token_file_account(forged))
    assert "(AADSTS50013)" in message and "does not verify against the keys" in message
    assert status["field"] == "issuer"


async def test_unreachable_issuer(entra: FakeEntra, signers: dict[str, Signer], tls: TLSFiles,
                                  token_file_account, make_credentials: Callable[..., Credentials]) -> None:
    gone = FakeKubernetes(ssl_context=tls.server, signer=signers["other"], port=1)
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(gone.issuer, SUBJECT)])
    orphan = gone.projected_token("ai", "gateway")
    message, status = await failure(make_credentials(), token_file_account(orphan))
    assert "(AADSTS50166)" in message and "could not fetch the OpenID configuration" in message
    assert status["field"] == "issuer"


async def test_wrong_scope(entra: FakeEntra, kube: FakeKubernetes, token_file_account,
                           make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, SUBJECT)])
    # both listed in GATEWAY_ENTRA_SCOPES, so what is reported is Entra's own refusal
    listed = make_credentials(scopes=["https://nope.example/.default", "https://cognitiveservices.azure.com"])
    message, status = await failure(listed, token_file_account(scope="https://nope.example/.default"))
    assert "(AADSTS500011)" in message and status["field"] == "scope"
    message, status = await failure(listed, token_file_account(scope="https://cognitiveservices.azure.com"))
    assert "(AADSTS1002012)" in message and "set auth.scope" in message and status["field"] == "scope"


async def test_messages_never_carry_the_assertion(entra: FakeEntra, kube: FakeKubernetes,
                                                  token_file_account,
                                                  make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, "other")])
    token = kube.projected_token("ai", "gateway")
    credentials = make_credentials()
    message, status = await failure(credentials, token_file_account(token))
    for part in token.split("."):
        assert part not in message and part not in repr(status)
