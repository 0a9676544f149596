"""A kubernetes assertion without namespace or service_account asks a token for the pod's own service
account: the namespace the kubelet writes beside the pod's token (else the token's claims), the service
account the Downward API puts in GATEWAY_KUBERNETES_SERVICE_ACCOUNT (else the token's claims). When
none of them says, nothing is sent and the error names the field to set."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sandbox.entra import FakeEntra, FederatedCredential
from sandbox.kubernetes import FakeKubernetes, subject
from shared.config.allowlist import Allowlist
from shared.config.schema import ConfigError
from shared.errors import Unavailable
from shared.settings import SettingsError, load
from shared.upstream.azure_sdk import AzureHttp
from shared.upstream.credentials import Credentials
from shared.upstream.tokens import RefreshPolicy
from tests.upstream.helpers import CLIENT, TENANT, TLSFiles, account

POD = ("ai", "gateway")


@pytest.fixture
async def credentials_for(entra: FakeEntra, kube: FakeKubernetes, entra_http: AzureHttp,
                          tmp_path_factory: pytest.TempPathFactory
                          ) -> AsyncIterator[Callable[[str], Credentials]]:
    """Credentials under the settings a pod would have: the fakes allowed, the tests' files (the pod's
    token, the test CA) readable, and GATEWAY_KUBERNETES_SERVICE_ACCOUNT as given."""
    made: list[Credentials] = []

    def make(service_account_setting: str = "") -> Credentials:
        settings = load({"GATEWAY_AUTHORITY_HOSTS": entra.url, "GATEWAY_KUBERNETES_API_SERVERS": kube.url,
                         "GATEWAY_CREDENTIAL_FILE_DIRS": str(tmp_path_factory.getbasetemp()),
                         "GATEWAY_KUBERNETES_SERVICE_ACCOUNT": service_account_setting})
        made.append(Credentials(allowlist=Allowlist.from_settings(settings), http=entra_http, environ={},
                                policy=RefreshPolicy(failure_hold_seconds=0)))
        return made[-1]

    yield make
    for credentials in made:
        await credentials.aclose()


def pod_files(tmp_path: Path, token: str, namespace: str | None) -> str:
    """The pod's token, and the namespace file beside it when `namespace` is given (as the kubelet
    writes them under /var/run/secrets/kubernetes.io/serviceaccount)."""
    directory = tmp_path / "serviceaccount"
    directory.mkdir(exist_ok=True)
    (directory / "token").write_text(token)
    if namespace is not None:
        (directory / "namespace").write_text(namespace + "\n")
    return str(directory / "token")


def wi_account(entra: FakeEntra, kube: FakeKubernetes, tls: TLSFiles, token_path: str):
    """Tenant and client id, and where the API server is: no namespace, no service account."""
    return account({"type": "workload-identity", "tenant_id": TENANT, "client_id": CLIENT,
                    "authority_host": entra.url,
                    "assertion": {"source": "kubernetes", "api_server": kube.url, "token_path": token_path,
                                  "ca_path": tls.ca_file}})


@pytest.mark.parametrize(("namespace_file", "setting", "asked"), [
    ("ai", "", ("ai", "gateway")),             # the namespace file, the token's service account
    (None, "", ("ai", "gateway")),             # the token's claims alone
    ("team", "", ("team", "gateway")),         # the namespace file wins over the token's namespace
    (None, "builder", ("ai", "builder")),      # the Downward API's service account wins over the token's
    ("team", "builder", ("team", "builder")),
])
async def test_the_pod_s_own_service_account_is_the_default(
        entra: FakeEntra, kube: FakeKubernetes, tls: TLSFiles, tmp_path: Path,
        credentials_for: Callable[[str], Credentials], namespace_file: str | None, setting: str,
        asked: tuple[str, str]) -> None:
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, subject(*asked))])
    kube.add_service_account(*asked)
    kube.allow(POD, asked)
    token_path = pod_files(tmp_path, kube.pod_token(*POD), namespace_file)
    acct = wi_account(entra, kube, tls, token_path)
    headers = await credentials_for(setting).for_account(acct).auth_headers()
    assert headers["Authorization"].startswith("Bearer ")
    assert kube.requests == [{"namespace": asked[0], "service_account": asked[1], "caller": subject(*POD)}]


@pytest.mark.parametrize(("namespace_file", "setting", "field", "words"), [
    (None, "gateway", "assertion.namespace",
     "auth.assertion.namespace is not set, there is no namespace file beside"),
    ("ai", "", "assertion.service_account",
     "auth.assertion.service_account is not set, GATEWAY_KUBERNETES_SERVICE_ACCOUNT is empty and the pod's "
     "token"),
    ("Not A Name", "gateway", "assertion.namespace", "the pod's namespace is not a Kubernetes name"),
])
async def test_without_a_default_nothing_is_sent_and_the_field_is_named(
        entra: FakeEntra, kube: FakeKubernetes, tls: TLSFiles, tmp_path: Path,
        credentials_for: Callable[[str], Credentials], namespace_file: str | None, setting: str,
        field: str, words: str) -> None:
    token_path = pod_files(tmp_path, "an-opaque-token-that-names-nobody", namespace_file)
    acct = wi_account(entra, kube, tls, token_path)
    credentials = credentials_for(setting)
    with pytest.raises(Unavailable) as caught:
        await credentials.for_account(acct).auth_headers()
    assert caught.value.status == 503 and words in caught.value.message
    assert credentials.status()[acct.name]["field"] == field
    assert "an-opaque-token" not in caught.value.message
    assert kube.requests == [] and entra.requests == []


@pytest.mark.parametrize(("value", "accepted"), [
    ("gateway", True), ("ai-gateway.v2", True), ("", True),
    ("Gateway", False), ("gate_way", False), ("gateway/../x", False), ("-gateway", False),
])
def test_the_service_account_setting_is_a_kubernetes_name(value: str, accepted: bool) -> None:
    if accepted:
        assert load({"GATEWAY_KUBERNETES_SERVICE_ACCOUNT": value}).kubernetes_service_account == value
    else:
        with pytest.raises(SettingsError, match=r"^GATEWAY_KUBERNETES_SERVICE_ACCOUNT must be a Kubernetes"):
            load({"GATEWAY_KUBERNETES_SERVICE_ACCOUNT": value})


@pytest.mark.parametrize(("assertion", "error"), [
    ({"source": "kubernetes"}, None),
    ({"source": "kubernetes", "namespace": "ai"}, None),
    ({"source": "kubernetes", "service_account": "gateway"}, None),
    ({"source": "kubernetes", "namespace": "AI"}, "auth.assertion.namespace: must be a Kubernetes name"),
    ({"source": "kubernetes", "service_account": "gw/x"},
     "auth.assertion.service_account: must be a Kubernetes name"),
    ({"source": "kubernetes", "pod": "x"}, "auth.assertion.pod: unknown field"),
])
def test_the_configuration_may_leave_the_names_out(assertion: dict[str, str], error: str | None) -> None:
    auth = {"type": "workload-identity", "tenant_id": TENANT, "client_id": CLIENT, "assertion": assertion}
    if error is None:
        assert account(auth).auth.options["assertion"]["source"] == "kubernetes"
    else:
        with pytest.raises(ConfigError) as caught:
            account(auth)
        assert str(caught.value).startswith(f"accounts.{error}")
