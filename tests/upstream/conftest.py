"""Fixtures for the upstream-credential tests: a test CA, and the fakes on real loopback sockets.

Fake Entra and the fake Kubernetes API speak HTTPS with certificates from a CA made here (trustme);
the credentials trust it through `AzureHttp(connection_verify=<CA file>)` (in-process) or SSL_CERT_FILE
(in the gateway process). Each fake runs in the test's own event loop.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import pytest
import trustme

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.entra import FakeEntra, Signer
from sandbox.kubernetes import FakeKubernetes
from sandbox.managed_identity import ManagedIdentityEndpoint
from shared.config.allowlist import Allowlist
from shared.settings import load
from shared.upstream.azure_sdk import AzureHttp
from shared.upstream.credentials import Credentials
from shared.upstream.tokens import RefreshPolicy
from tests.upstream.helpers import TENANT, TLSFiles

# Variables that would steer azure-identity's ManagedIdentityCredential elsewhere than the fake.
_MI_ENV = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
           "MSI_ENDPOINT", "MSI_SECRET", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST")


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    ca = trustme.CA()
    directory = tmp_path_factory.mktemp("tls")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context(cafile=str(ca_file))
    return TLSFiles(ca=ca, ca_file=str(ca_file), server=server, client=client)


@pytest.fixture(scope="session")
def signers() -> dict[str, Signer]:
    """RSA keys made once per session (making one costs ~60 ms)."""
    return {"entra": Signer("entra-key"), "kube": Signer("kube-key"), "other": Signer("other-key")}


@pytest.fixture(autouse=True)
def _no_host_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _MI_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def entra(tls: TLSFiles, signers: dict[str, Signer]) -> AsyncIterator[FakeEntra]:
    server = FakeEntra(ssl_context=tls.server, client_ssl=tls.client, signer=signers["entra"])
    server.add_tenant(TENANT)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def kube(tls: TLSFiles, signers: dict[str, Signer]) -> AsyncIterator[FakeKubernetes]:
    server = FakeKubernetes(ssl_context=tls.server, signer=signers["kube"])
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def identity_endpoint(entra: FakeEntra, monkeypatch: pytest.MonkeyPatch
                            ) -> AsyncIterator[ManagedIdentityEndpoint]:
    """The App Service managed-identity endpoint, announced the way App Service announces it."""
    server = ManagedIdentityEndpoint(entra)
    await server.start()
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    yield server
    await server.stop()


@pytest.fixture
async def aoai(entra: FakeEntra) -> AsyncIterator[AzureOpenAIEmulator]:
    """The emulator, accepting only a bearer token the fake Entra issued for Cognitive Services."""
    server = AzureOpenAIEmulator(api_key=None, bearer_check=entra.bearer_check())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def entra_http(tls: TLSFiles) -> AzureHttp:
    return AzureHttp(connection_verify=tls.ca_file, retry_total=0, connection_timeout=3, read_timeout=5)


def allowlist_for(request: pytest.FixtureRequest, scopes: Iterable[str] = ()) -> Allowlist:
    """What a test gateway's settings would allow: the emulator on http loopback
    (GATEWAY_DEV_ALLOW_HTTP_LOOPBACK), the test's fake Entra (GATEWAY_AUTHORITY_HOSTS), `scopes`
    (GATEWAY_ENTRA_SCOPES), the test's fake Kubernetes API server (GATEWAY_KUBERNETES_API_SERVERS) and
    pytest's temporary directories, where the tests write token, CA and certificate files
    (GATEWAY_CREDENTIAL_FILE_DIRS)."""
    authorities = {request.getfixturevalue("entra").url} if "entra" in request.fixturenames else set()
    api_servers = {request.getfixturevalue("kube").url} if "kube" in request.fixturenames else set()
    temporary = str(request.getfixturevalue("tmp_path_factory").getbasetemp())
    return Allowlist.from_settings(load({
        "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK": "true", "GATEWAY_AUTHORITY_HOSTS": ",".join(authorities),
        "GATEWAY_ENTRA_SCOPES": ",".join(scopes), "GATEWAY_KUBERNETES_API_SERVERS": ",".join(api_servers),
        "GATEWAY_CREDENTIAL_FILE_DIRS": temporary}))


@pytest.fixture
async def make_credentials(entra_http: AzureHttp, request: pytest.FixtureRequest
                           ) -> AsyncIterator[Callable[..., Credentials]]:
    made: list[Credentials] = []

    def make(*, scopes: Iterable[str] = (), **kwargs: Any) -> Credentials:
        kwargs.setdefault("allowlist", allowlist_for(request, scopes))
        kwargs.setdefault("http", entra_http)
        kwargs.setdefault("environ", {})
        kwargs.setdefault("policy", RefreshPolicy(failure_hold_seconds=0))
        credentials = Credentials(**kwargs)
        made.append(credentials)
        return credentials

    yield make
    for credentials in made:
        await credentials.aclose()


@pytest.fixture
def kube_files(tmp_path: Any) -> Iterator[Callable[[str], str]]:
    """Writes a token into a file and returns its path (a projected token, a pod token)."""
    def write(token: str, name: str = "token") -> str:
        path = tmp_path / name
        path.write_text(token)
        return str(path)

    yield write
