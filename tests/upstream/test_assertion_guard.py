"""Whoever may edit an account cannot make the gateway send the pod's Kubernetes identity to a host of
their choosing, nor read any file on disk as a token, a cluster CA or a certificate: refused at parse
(apply, /manage), left unused when found stored, and refused again where the credential is used, with
links resolved, before any file is read or any byte is sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from sandbox.azurite import Azurite
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.entra import FakeEntra, FederatedCredential, make_certificate
from sandbox.idp import DevIdentityProvider
from sandbox.kubernetes import FakeKubernetes
from sandbox.loop import BackgroundLoop
from shared.config.allowlist import Allowlist, NotAllowed
from shared.config.entities import Write
from shared.config.model import Config
from shared.config.schema import ConfigError, parse
from shared.config.snapshot import View
from shared.errors import Unavailable
from shared.settings import load
from shared.upstream.assertions import build_assertion_source
from shared.upstream.credentials import Credentials
from shared.upstream.problem import CredentialProblem
from tests.harness import EMULATOR_KEY_ENV, Api, Tables, gateway_env, sandbox_config, unique_prefix
from tests.manage.conftest import ROOT_ADMIN, cli
from tests.upstream.conftest import allowlist_for
from tests.upstream.helpers import CLIENT, TENANT, TLSFiles, account

SUBJECT = "system:serviceaccount:ai:gateway"
KUBE = {"source": "kubernetes", "namespace": "ai", "service_account": "gateway"}


class Listener:
    """A real https server on loopback that counts every TCP connection it accepts, before any TLS
    handshake or request, and keeps what it was sent: where a stolen pod token would arrive."""

    def __init__(self, tls: TLSFiles) -> None:
        self._ssl = tls.server
        self._server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0
        self.received: list[bytes] = []

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await writer.start_tls(self._ssl)
            self.received.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def listener(tls: TLSFiles) -> AsyncIterator[Listener]:
    server = Listener(tls)
    await server.start()
    yield server
    await server.stop()


def wi(assertion: dict[str, Any], entra: FakeEntra) -> dict[str, Any]:
    return {"type": "workload-identity", "tenant_id": TENANT, "client_id": CLIENT, "assertion": assertion,
            "authority_host": entra.url}


def certificate_auth(path: str, entra: FakeEntra) -> dict[str, Any]:
    return {"type": "certificate", "tenant_id": TENANT, "client_id": CLIENT, "certificate_path": path,
            "authority_host": entra.url}


def refused_at(auth: dict[str, Any], allowlist: Allowlist) -> tuple[str, str]:
    """The field (and problem) a file with this account is refused at by apply, diff and /manage."""
    raw = {"name": "aoai", "kind": "azure-openai", "endpoint": "https://acme.openai.azure.com", "auth": auth}
    with pytest.raises(ConfigError) as caught:
        parse({"accounts": [raw]}, allowlist=allowlist)
    return caught.value.field, caught.value.problem


async def failure(credentials: Credentials, auth: dict[str, Any]) -> tuple[str, dict[str, object]]:
    """What a request on this (stored) account answers, and what status reports for it."""
    acct = account(auth)
    with pytest.raises(Unavailable) as caught:
        await credentials.for_account(acct).auth_headers()
    assert caught.value.status == 503
    return caught.value.message, credentials.status()["aoai"]


def settings_allowlist(request: pytest.FixtureRequest, **settings: str) -> Allowlist:
    """The test's allowlist (conftest.allowlist_for) with some settings in place of its own."""
    base = allowlist_for(request)
    env = {"GATEWAY_DEV_ALLOW_HTTP_LOOPBACK": "true",
           "GATEWAY_AUTHORITY_HOSTS": ",".join(base.authority_hosts),
           "GATEWAY_KUBERNETES_API_SERVERS": ",".join(base.kubernetes_api_servers),
           "GATEWAY_CREDENTIAL_FILE_DIRS": ",".join(base.credential_dirs), **settings}
    return Allowlist.from_settings(load(env))


# --- the Kubernetes API server: only the in-cluster one or a listed one ----------------------------

@pytest.mark.parametrize("api_server", [
    "https://127.0.0.1:{port}",
    "https://localhost:{port}",
    "http://127.0.0.1:{port}",                       # plain http never
    "https://127.0.0.1:{port}/api",
    "https://{kube}@127.0.0.1:{port}",               # the listed server as user information
    "https://127.0.0.1:{port}#@{kube}",
])
async def test_attack_kubernetes_api_server_exfiltrates_pod_token(
        request: pytest.FixtureRequest, api_server: str, entra: FakeEntra, kube: FakeKubernetes,
        tls: TLSFiles, listener: Listener, kube_files: Callable[..., str],
        make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, SUBJECT)])
    url = api_server.format(port=listener.port, kube=kube.url.removeprefix("https://"))
    pod_token = kube_files(kube.pod_token("ai", "gateway"), "pod-token")
    assertion = {**KUBE, "api_server": url, "token_path": pod_token, "ca_path": tls.ca_file}
    allowlist = allowlist_for(request)                   # lists the fake Kubernetes, not the listener

    field, problem = refused_at(wi(assertion, entra), allowlist)        # apply, diff, /manage
    assert field == "accounts[0].auth.assertion.api_server"
    assert str(listener.port) not in problem and "GATEWAY_KUBERNETES_API_SERVERS" in problem
    view = View.build(Config(accounts=(account(wi(assertion, entra)),)), "v1", frozenset(), 0.0,
                      allowlist=allowlist)                              # a stored account is not used
    assert view.accounts == {} and view.refused["aoai"].startswith("auth.assertion.api_server: must be")

    credentials = make_credentials()
    message, status = await failure(credentials, wi(assertion, entra))   # a request
    assert message.startswith("account aoai: auth.assertion.api_server must be the in-cluster API server")
    assert status["field"] == "assertion.api_server" and str(listener.port) not in message
    errors = await credentials.refresh_all([account(wi(assertion, entra))])   # the prewarm canary
    assert "auth.assertion.api_server must be" in str(errors["aoai"])

    source = build_assertion_source(assertion, lambda: {}, allowlist=allowlist)   # assertions.py itself
    with pytest.raises(CredentialProblem) as caught:
        await source.assertion()
    await source.aclose()
    assert caught.value.field == "assertion.api_server"

    assert listener.connections == 0 and listener.received == []
    assert kube.requests == [] and entra.requests == []


async def test_the_in_cluster_api_server_may_be_named_or_left_out(
        request: pytest.FixtureRequest, entra: FakeEntra, kube: FakeKubernetes, tls: TLSFiles,
        listener: Listener, kube_files: Callable[..., str],
        make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, SUBJECT)])
    pod = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(kube.port)}
    in_pod = settings_allowlist(request, GATEWAY_KUBERNETES_API_SERVERS="", **pod)   # nothing listed
    files = {"token_path": kube_files(kube.pod_token("ai", "gateway"), "pod-token"), "ca_path": tls.ca_file}
    for assertion in ({**KUBE, **files}, {**KUBE, **files, "api_server": f"https://127.0.0.1:{kube.port}/"}):
        parse({"accounts": [{"name": "aoai", "endpoint": "https://acme.openai.azure.com",
                             "auth": wi(assertion, entra)}]}, allowlist=in_pod)
        credentials = make_credentials(allowlist=in_pod, environ=pod)
        headers = await credentials.for_account(account(wi(assertion, entra))).auth_headers()
        assert headers["Authorization"].startswith("Bearer ")
    assert len(kube.requests) == 2
    elsewhere = {**KUBE, **files, "api_server": listener.url}
    assert refused_at(wi(elsewhere, entra), in_pod)[0] == "accounts[0].auth.assertion.api_server"
    assert listener.connections == 0


async def test_a_listed_api_server_is_used_and_only_when_listed(
        request: pytest.FixtureRequest, entra: FakeEntra, kube: FakeKubernetes, tls: TLSFiles,
        kube_files: Callable[..., str], make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, SUBJECT)])
    assertion = {**KUBE, "api_server": kube.url, "ca_path": tls.ca_file,
                 "token_path": kube_files(kube.pod_token("ai", "gateway"), "pod-token")}
    listed = settings_allowlist(request, GATEWAY_KUBERNETES_API_SERVERS=kube.url)
    credential = make_credentials(allowlist=listed).for_account(account(wi(assertion, entra)))
    headers = await credential.auth_headers()
    assert headers["Authorization"].startswith("Bearer ") and len(kube.requests) == 1
    unlisted = settings_allowlist(request, GATEWAY_KUBERNETES_API_SERVERS="")    # loopback is not enough
    _, status = await failure(make_credentials(allowlist=unlisted), wi(assertion, entra))
    assert status["field"] == "assertion.api_server" and len(kube.requests) == 1


# --- files: absolute, plainly named, under /var/run/secrets/ or a listed directory ------------------

OUTSIDE = ["/etc/passwd", "/proc/self/environ", "/etc/ssl/certs/ca-certificates.crt", "etc/passwd",
           "/var/run/secretsX/token", "/var/run/secrets", "/var/run/secrets/",
           "/var/run/secrets/../../etc/passwd"]


@pytest.mark.parametrize("path", OUTSIDE)
@pytest.mark.parametrize("field", ["token_path", "ca_path"])
async def test_attack_token_path_reads_arbitrary_file(
        request: pytest.FixtureRequest, field: str, path: str, entra: FakeEntra, kube: FakeKubernetes,
        tls: TLSFiles, kube_files: Callable[..., str], make_credentials: Callable[..., Credentials]) -> None:
    """The file's content would go to the (listed) API server as the bearer, or decide whom to trust."""
    files = {"token_path": kube_files(kube.pod_token("ai", "gateway"), "pod-token"), "ca_path": tls.ca_file}
    assertion = {**KUBE, "api_server": kube.url, **files, field: path}
    field_at, problem = refused_at(wi(assertion, entra), allowlist_for(request))
    assert field_at == f"accounts[0].auth.assertion.{field}" and not any(
        word in problem for word in ("passwd", "environ", "certificates", "secretsX"))
    message, status = await failure(make_credentials(), wi(assertion, entra))
    assert message.startswith(f"account aoai: auth.assertion.{field} must be")
    assert status["field"] == f"assertion.{field}" and not any(
        word in message for word in ("passwd", "environ", "certificates", "secretsX"))
    assert kube.requests == [] and entra.requests == []


@pytest.mark.parametrize("path", [
    "/var/run/secrets/../../etc/passwd",
    "/var/run/secrets/./../../etc/passwd",
    "/var/run/secrets//../../etc/passwd",
    "/var/run/secrets/azure/tokens/../../../../proc/self/environ",
    "/var/run/secrets/kubernetes.io/serviceaccount/..",
    "{tmp}/../../../../../../../etc/passwd",               # under a listed directory, as written
    "{tmp}/./token",
])
async def test_attack_token_file_path_traversal(
        request: pytest.FixtureRequest, path: str, tmp_path: Path, entra: FakeEntra, kube: FakeKubernetes,
        make_credentials: Callable[..., Credentials]) -> None:
    """The file's content would go to Entra as the client assertion."""
    (tmp_path / "token").write_text(kube.projected_token("ai", "gateway"))
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, SUBJECT)])
    assertion = {"source": "token-file", "path": path.format(tmp=tmp_path)}
    assert refused_at(wi(assertion, entra), allowlist_for(request))[0] == "accounts[0].auth.assertion.path"
    message, status = await failure(make_credentials(), wi(assertion, entra))
    assert message.startswith("account aoai: auth.assertion.path must be an absolute path without empty, "
                              ". or .. segments") and "passwd" not in message
    assert status["field"] == "assertion.path" and entra.requests == []


@pytest.mark.parametrize("path", ["/var/run/secrets/token\x00", "/var/run/secrets/\x00/../../etc/passwd",
                                  "/var/run/secrets/a\nb", "relative/token", ""])
def test_credential_file_names_are_plain(path: str) -> None:
    """What a stored value could hold that the file format cannot (a NUL, a new line)."""
    with pytest.raises(NotAllowed) as caught:
        Allowlist().check_credential_file(path)
    assert "\x00" not in caught.value.problem and "passwd" not in caught.value.problem


def ca_bytes(tls: TLSFiles) -> bytes:
    return Path(tls.ca_file).read_bytes()


def link_out(tmp_path: Path, how: str, name: str, content: bytes) -> tuple[Path, str]:
    """`allowed/` (the listed directory) and, through a link of kind `how`, a path in it that leads to
    `outside/<name>` holding `content`."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir(exist_ok=True)
    outside.mkdir(exist_ok=True)
    (outside / name).write_bytes(content)
    if how == "file":
        (allowed / name).symlink_to(outside / name)
        return allowed, str(allowed / name)
    if how == "relative":
        (allowed / name).symlink_to(Path("..") / "outside" / name)
        return allowed, str(allowed / name)
    if how == "directory":
        (allowed / "projected").symlink_to(outside, target_is_directory=True)
        return allowed, str(allowed / "projected" / name)
    (allowed / "b").symlink_to(outside / name)                # a chain: a -> b -> outside
    (allowed / name).symlink_to(allowed / "b")
    return allowed, str(allowed / name)


@pytest.mark.parametrize("how", ["file", "relative", "directory", "chain"])
@pytest.mark.parametrize("field", ["assertion.path", "assertion.token_path", "assertion.ca_path",
                                   "certificate_path"])
async def test_attack_symlink_out_of_allowed_dir(
        request: pytest.FixtureRequest, how: str, field: str, tmp_path: Path, entra: FakeEntra,
        kube: FakeKubernetes, tls: TLSFiles, kube_files: Callable[..., str],
        make_credentials: Callable[..., Credentials]) -> None:
    """Each file outside is one the gateway would use successfully: only the guard stops it."""
    pem, cert = make_certificate() if field == "certificate_path" else (b"", None)
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, SUBJECT)],
                  certificates=[cert] if cert is not None else [])
    content = {"assertion.path": kube.projected_token("ai", "gateway").encode(),
               "assertion.token_path": kube.pod_token("ai", "gateway").encode(),
               "assertion.ca_path": ca_bytes(tls), "certificate_path": pem}[field]
    allowed, path = link_out(tmp_path, how, "credential", content)
    allowlist = settings_allowlist(request, GATEWAY_CREDENTIAL_FILE_DIRS=str(allowed))
    files = {"token_path": str(allowed / "pod-token"), "ca_path": str(allowed / "ca.pem")}
    (allowed / "pod-token").write_text(kube.pod_token("ai", "gateway"))
    (allowed / "ca.pem").write_bytes(ca_bytes(tls))
    auth = {"assertion.path": wi({"source": "token-file", "path": path}, entra),
            "assertion.token_path": wi({**KUBE, "api_server": kube.url, **files, "token_path": path}, entra),
            "assertion.ca_path": wi({**KUBE, "api_server": kube.url, **files, "ca_path": path}, entra),
            "certificate_path": certificate_auth(path, entra)}[field]
    parse({"accounts": [{"name": "aoai", "endpoint": "https://acme.openai.azure.com", "auth": auth}]},
          allowlist=allowlist)                                  # as written, the path is inside
    message, status = await failure(make_credentials(allowlist=allowlist), auth)
    assert message.startswith(f"account aoai: auth.{field} must not lead (through a symbolic link) out of")
    assert status["field"] == field and str(tmp_path) not in message
    assert kube.requests == [] and entra.requests == []


async def test_links_inside_a_listed_directory_are_followed(
        request: pytest.FixtureRequest, tmp_path: Path, entra: FakeEntra, kube: FakeKubernetes,
        make_credentials: Callable[..., Credentials]) -> None:
    """The kubelet's own layout: token -> ..data/token, ..data -> ..<timestamp>/, all in one directory."""
    entra.add_app(TENANT, CLIENT, federated=[FederatedCredential(kube.issuer, SUBJECT)])
    projected = tmp_path / "azure-tokens"
    (projected / "..2024_01_01_00_00_00.1").mkdir(parents=True)
    (projected / "..2024_01_01_00_00_00.1" / "azure-identity-token").write_text(
        kube.projected_token("ai", "gateway"))
    (projected / "..data").symlink_to("..2024_01_01_00_00_00.1", target_is_directory=True)
    (projected / "azure-identity-token").symlink_to("..data/azure-identity-token")
    path = str(projected / "azure-identity-token")
    listed = settings_allowlist(request, GATEWAY_CREDENTIAL_FILE_DIRS=str(projected))
    auth = wi({"source": "token-file", "path": path}, entra)
    headers = await make_credentials(allowlist=listed).for_account(account(auth)).auth_headers()
    assert headers["Authorization"].startswith("Bearer ")
    # the same file, its directory not listed: refused before it is read
    unlisted = settings_allowlist(request, GATEWAY_CREDENTIAL_FILE_DIRS="")
    message, status = await failure(make_credentials(allowlist=unlisted), auth)
    assert "auth.assertion.path must be a file under /var/run/secrets/" in message
    assert status["field"] == "assertion.path"


def test_the_default_in_cluster_files_are_allowed() -> None:
    """token_path and ca_path left out: /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt};
    AKS workload identity's /var/run/secrets/azure/tokens/azure-identity-token."""
    for auth in ({"type": "workload-identity", "tenant_id": TENANT, "client_id": CLIENT, "assertion": KUBE},
                 {"type": "workload-identity", "tenant_id": TENANT, "client_id": CLIENT,
                  "assertion": {"source": "token-file",
                                "path": "/var/run/secrets/azure/tokens/azure-identity-token"}}):
        parse({"accounts": [{"name": "aoai", "endpoint": "https://acme.openai.azure.com", "auth": auth}]})


@pytest.mark.parametrize("path", ["/etc/ssl/private/ssl-cert-snakeoil.key", "/etc/passwd",
                                  "{outside}/app.pem", "{allowed}/../outside/app.pem", "app.pem"])
async def test_attack_certificate_path_outside_dirs(
        request: pytest.FixtureRequest, path: str, tmp_path: Path, entra: FakeEntra,
        make_credentials: Callable[..., Credentials]) -> None:
    """A certificate the app has registered, in a directory the operator did not list."""
    pem, cert = make_certificate()
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (outside / "app.pem").write_bytes(pem)
    entra.add_app(TENANT, CLIENT, certificates=[cert])
    auth = certificate_auth(path.format(outside=outside, allowed=allowed), entra)
    allowlist = settings_allowlist(request, GATEWAY_CREDENTIAL_FILE_DIRS=str(allowed))
    field, problem = refused_at(auth, allowlist)
    assert field == "accounts[0].auth.certificate_path" and str(tmp_path) not in problem
    message, status = await failure(make_credentials(allowlist=allowlist), auth)
    assert message.startswith("account aoai: auth.certificate_path must be")
    assert status["field"] == "certificate_path" and str(tmp_path) not in message
    assert entra.requests == []
    # in a listed directory, the same certificate is used
    (allowed / "app.pem").write_bytes(pem)
    listed = certificate_auth(str(allowed / "app.pem"), entra)
    headers = await make_credentials(allowlist=allowlist).for_account(account(listed)).auth_headers()
    assert headers["Authorization"].startswith("Bearer ")


# --- a real gateway with such an account stored ------------------------------------------------------

@pytest.fixture
def loop_listener(loop: BackgroundLoop, tls: TLSFiles) -> Iterator[Listener]:
    server = Listener(tls)
    loop.run(server.start())
    yield server
    loop.run(server.stop())


def test_attack_stored_kubernetes_api_server_is_never_contacted(
        azurite: Azurite, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, tls: TLSFiles,
        loop_listener: Listener, tmp_path: Path, start_gateway: Any) -> None:
    """Written straight to the tables (by an older version, or anything that bypassed the checks), with
    a real pod token and a CA that trusts the listener: the gateway must still never connect to it."""
    (tmp_path / "pod-token").write_text(FakeKubernetes(ssl_context=tls.server).pod_token("ai", "gateway"))
    exfil = {"kind": "azure-openai", "endpoint": emulator.url,
             "auth": {"type": "workload-identity", "tenant_id": TENANT, "client_id": CLIENT,
                      "assertion": {**KUBE, "api_server": loop_listener.url,
                                    "token_path": str(tmp_path / "pod-token"), "ca_path": tls.ca_file}}}
    tables = Tables(azurite, unique_prefix())
    doc = sandbox_config(idp, emulator)
    doc["accounts"].append({"name": "exfil", "kind": "azure-openai", "endpoint": emulator.url,
                            "auth": {"type": "api-key", "key_env": EMULATOR_KEY_ENV}})
    doc["models"].append({"name": "exfil", "targets": [{"account": "exfil", "deployment": "d"}]})
    doc["collaborators"].append({"resource": "model:exfil", "principal": "identity:developers",
                                 "role": "viewer"})
    tables.apply(doc)
    with pytest.raises(ConfigError) as caught:                           # apply refuses it
        tables.apply({**doc, "accounts": [doc["accounts"][0], {"name": "exfil", **exfil}]},
                     GATEWAY_CREDENTIAL_FILE_DIRS=str(tmp_path))
    assert caught.value.field == "accounts[1].auth.assertion.api_server"

    async def overwrite(store: Any) -> None:
        await store.write([Write("accounts", "exfil", {"name": "exfil", **exfil})])

    tables._run(overwrite)
    env = gateway_env(tables, GATEWAY_ADMINS=ROOT_ADMIN, GATEWAY_CREDENTIAL_FILE_DIRS=str(tmp_path))
    gw = start_gateway(env)
    token = idp.mint("alice", claims={"groups": ["developers"]}, audience="api://ai-gateway")
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=token, max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="exfil", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 503
    accounts = Api(gw.url, idp, "root").get("status").json()["accounts"]
    assert accounts["exfil"]["field"] == "assertion.api_server"
    prewarm = cli(env, "prewarm", "--output", "json")
    report = json.loads(prewarm.stdout)
    assert prewarm.returncode == 1
    assert "auth.assertion.api_server must be" in report["accounts"]["exfil"]["error"]
    logs = gw.logs()
    assert "account exfil is not used" in logs and "auth.assertion.api_server: must be" in logs
    assert str(loop_listener.port) not in logs + prewarm.stdout
    assert loop_listener.connections == 0 and loop_listener.received == []
