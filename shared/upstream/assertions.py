"""Where a workload-identity account's client assertion comes from (its `auth.assertion.source`).

Each source returns a fresh JWT for audience api://AzureADTokenExchange whenever asked, so the
assertion is never older than the Entra token request it serves:

- `managed-identity`: the app's user-assigned managed identity gets a token for
  api://AzureADTokenExchange/.default: managed identity as a federated credential, the keyless way
  inside Azure Functions.
- `token-file`: a projected service-account token, re-read every time because the kubelet rotates it.
- `kubernetes`: the TokenRequest API, authenticated with the pod's own service-account token (re-read
  every time too) and trusting the cluster CA.

The pod's token goes out as a bearer and a token file's content as the client assertion, so every file
and API server is held to the allowlist here too, before anything is read or sent: a file only under the
allowed directories once its links are resolved, an API server only the in-cluster or a listed one.
Failures are CredentialProblems naming the `auth.assertion.*` field to fix.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from ..auth.addresses import AddressPolicy, AddressRefused, socket_factory
from ..config.allowlist import Allowlist, NotAllowed
from ..config.schema import KUBERNETES_NAME_RE
from . import azure_sdk
from .entra import EXCHANGE_AUDIENCE, transport_problem
from .problem import CredentialProblem

if TYPE_CHECKING:
    import aiohttp
    from azure.core.credentials_async import AsyncTokenCredential

log = logging.getLogger("gateway.upstream.assertions")

EXCHANGE_SCOPE = EXCHANGE_AUDIENCE + "/.default"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_REQUEST_SECONDS = 3600          # asked of the TokenRequest API; Entra accepts up to a day
KUBERNETES_TIMEOUT_SECONDS = 15
# The API server is the cluster's own: private in a pod, loopback for a local cluster (kind). Metadata,
# link-local and the other forbidden addresses stay refused (api_server is admin input).
KUBERNETES_ADDRESSES = AddressPolicy(allow_loopback=True, allow_private=True)


class AssertionSource(Protocol):
    async def assertion(self) -> str: ...

    async def aclose(self) -> None: ...


def _payload(token: str) -> dict[str, Any]:
    """A JWT's claims, read WITHOUT verification."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def peek_claims(token: str) -> dict[str, Any]:
    """The iss/sub/aud/nbf/exp of a JWT, read WITHOUT verification: only to say what was presented."""
    claims = _payload(token)
    return {k: claims[k] for k in ("iss", "sub", "aud", "nbf", "exp") if k in claims}


async def _read_text(path: str) -> str:
    return await asyncio.to_thread(Path(path).read_text, encoding="utf-8")


async def allowed_file(allowlist: Allowlist, path: str, field: str) -> str:
    """The file to open for auth.`field`, links resolved, if the allowlist admits it (the refusal
    names the field, never the path: it is the configuration's text)."""
    try:
        return await asyncio.to_thread(allowlist.credential_file, path)
    except NotAllowed as exc:
        raise CredentialProblem(f"auth.{field} {exc.problem}", field=field) from None


async def read_token_file(path: str, field: str, what: str, *, opened: str) -> str:
    """The token auth.`field` names as `path`, read from `opened`: what allowed_file() resolved it to."""
    try:
        text = (await _read_text(opened)).strip()
    except FileNotFoundError:
        raise CredentialProblem(f"{what} file {path} does not exist: check auth.{field}",
                                field=field) from None
    except OSError as exc:
        raise CredentialProblem(f"cannot read {what} file {path} ({exc.strerror or exc}): check auth.{field}",
                                field=field) from None
    if not text:
        raise CredentialProblem(f"{what} file {path} is empty: check auth.{field}", field=field)
    return text


class TokenFileAssertion:
    """A projected service-account token (AKS workload identity: AZURE_FEDERATED_TOKEN_FILE)."""

    def __init__(self, path: str, allowlist: Allowlist) -> None:
        self.path = path
        self._allowlist = allowlist

    async def assertion(self) -> str:
        opened = await allowed_file(self._allowlist, self.path, "assertion.path")
        return await read_token_file(self.path, "assertion.path", "the assertion token", opened=opened)

    async def aclose(self) -> None:
        return None


class ManagedIdentityAssertion:
    """A user-assigned managed identity's token for api://AzureADTokenExchange."""

    def __init__(self, client_id: str,
                 factory: Callable[[str], AsyncTokenCredential] | None = None) -> None:
        self.client_id = client_id
        self._factory = factory
        self._credential: AsyncTokenCredential | None = None

    async def _get_credential(self) -> AsyncTokenCredential:
        if self._credential is None:
            await azure_sdk.load()
            if self._factory is not None:
                self._credential = self._factory(self.client_id)
            else:
                # its own cache is kept: a managed-identity token is good for hours and is refreshed
                # by azure-identity well before it expires
                self._credential = azure_sdk.managed_identity(self.client_id, cached=True)
        return self._credential

    async def assertion(self) -> str:
        try:
            credential = await self._get_credential()
            return (await credential.get_token_info(EXCHANGE_SCOPE)).token
        except Exception as exc:
            raise managed_identity_problem(exc, self.client_id, "assertion.client_id") from None

    async def aclose(self) -> None:
        if self._credential is not None:
            await self._credential.close()
            self._credential = None


def managed_identity_problem(exc: Exception, client_id: str | None, field: str) -> CredentialProblem:
    """A managed-identity endpoint's failure in words (no endpoint, unknown identity, outage)."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )
    from azure.identity import CredentialUnavailableError

    who = f"user-assigned identity {client_id}" if client_id else "the system-assigned identity"
    if isinstance(exc, CredentialUnavailableError):
        return CredentialProblem(f"no managed identity is available here for {who} ({_line(exc)}): managed "
                                 "identity works inside Azure (App Service and Functions set "
                                 "IDENTITY_ENDPOINT and IDENTITY_HEADER)", field=field)
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return transport_problem(exc, "IDENTITY_ENDPOINT or IMDS", "the managed identity endpoint", field)
    if isinstance(exc, HttpResponseError | ClientAuthenticationError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        detail = _endpoint_message(exc)
        if status is not None and status >= 500:
            return CredentialProblem(f"the managed identity endpoint failed (HTTP {status}: {detail})",
                                     field=field, transient=True)
        return CredentialProblem(f"the managed identity endpoint refused {who} (HTTP {status}: {detail}): "
                                 f"check auth.{field}: it must be the client id of a user-assigned identity "
                                 "attached to this app", field=field)
    if isinstance(exc, ValueError):
        return CredentialProblem(f"invalid managed identity settings ({exc}): check auth.{field}",
                                 field=field)
    return CredentialProblem(f"managed identity token request failed ({type(exc).__name__}: {_line(exc)})",
                             field=field)


def _endpoint_message(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    try:
        doc = json.loads(response.text()) if response is not None else None
    except Exception:
        doc = None
    if isinstance(doc, dict):
        for key in ("message", "error_description", "error"):
            if isinstance(doc.get(key), str):
                return doc[key][:200]
    return _line(exc)


def _line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class KubernetesTarget:
    namespace: str | None           # None: the pod's own, found once the pod's token is read
    service_account: str | None
    api_server: str
    token_path: str
    ca_path: str


def kubernetes_target(options: Mapping[str, Any], environ: Callable[[], Mapping[str, str]],
                      allowlist: Allowlist) -> KubernetesTarget:
    """The TokenRequest endpoint and the pod's credentials; defaults are the in-cluster ones. A named
    api_server must be one the allowlist admits (its origin is what is used)."""
    api_server = options.get("api_server")
    if api_server:
        try:
            api_server = allowlist.check_api_server(str(api_server))
        except NotAllowed as exc:
            raise CredentialProblem(f"auth.assertion.api_server {exc.problem}",
                                    field="assertion.api_server") from None
    else:
        env = environ()
        host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise CredentialProblem("auth.assertion.api_server is not set and KUBERNETES_SERVICE_HOST is not "
                                    "in the environment (not running in a pod?): set api_server",
                                    field="assertion.api_server")
        api_server = f"https://{_host(host)}:{port}"
    if not str(api_server).lower().startswith("https://"):
        raise CredentialProblem("auth.assertion.api_server must be an https URL (the pod's service-account "
                                "token is sent there)", field="assertion.api_server")
    service_account = _option(options, "service_account") or allowlist.pod_service_account or None
    return KubernetesTarget(namespace=_option(options, "namespace"), service_account=service_account,
                            api_server=str(api_server).rstrip("/"),
                            token_path=str(options.get("token_path") or f"{SERVICE_ACCOUNT_DIR}/token"),
                            ca_path=str(options.get("ca_path") or f"{SERVICE_ACCOUNT_DIR}/ca.crt"))


def _option(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    return str(value) if value else None


async def pod_names(target: KubernetesTarget, pod_token: str, allowlist: Allowlist) -> tuple[str, str]:
    """The namespace and service account to ask a token for: the configured ones, else the pod's own
    (the namespace file beside the pod's token, then the token's own claims; the service account
    from GATEWAY_KUBERNETES_SERVICE_ACCOUNT, then the token's claims). The claims are read unverified:
    the API server checks the token it is sent, and a wrong name only makes it refuse."""
    claimed = _claimed_names(pod_token)
    namespace = target.namespace or await _namespace_file(target.token_path, allowlist) or claimed[0]
    service_account = target.service_account or claimed[1]
    if not namespace:
        raise CredentialProblem(
            "auth.assertion.namespace is not set, there is no namespace file beside "
            f"{target.token_path} and the pod's token names no namespace: set auth.assertion.namespace",
            field="assertion.namespace")
    if not service_account:
        raise CredentialProblem(
            "auth.assertion.service_account is not set, GATEWAY_KUBERNETES_SERVICE_ACCOUNT is empty and "
            f"the pod's token in {target.token_path} names no service account: set "
            "auth.assertion.service_account, or GATEWAY_KUBERNETES_SERVICE_ACCOUNT from the Downward API "
            "(fieldRef spec.serviceAccountName)", field="assertion.service_account")
    for field, name in (("namespace", namespace), ("service_account", service_account)):
        if not KUBERNETES_NAME_RE.match(name):
            raise CredentialProblem(f"the pod's {field.replace('_', ' ')} is not a Kubernetes name: set "
                                    f"auth.assertion.{field}", field=f"assertion.{field}")
    return namespace, service_account


async def _namespace_file(token_path: str, allowlist: Allowlist) -> str | None:
    """The kubelet writes the pod's namespace beside its token; absent or not admitted: no default here."""
    path = str(Path(token_path).parent / "namespace")
    try:
        opened = await asyncio.to_thread(allowlist.credential_file, path)
        return (await _read_text(opened)).strip() or None
    except (NotAllowed, OSError, UnicodeDecodeError):
        return None


def _claimed_names(token: str) -> tuple[str | None, str | None]:
    """The namespace and service account a service-account token names (`kubernetes.io` claims, else its
    subject system:serviceaccount:<namespace>:<name>), unverified."""
    claims = _payload(token)
    about = claims.get("kubernetes.io")
    if isinstance(about, dict):
        account = about.get("serviceaccount")
        name = account.get("name") if isinstance(account, dict) else None
        namespace = about.get("namespace")
        if isinstance(namespace, str) and isinstance(name, str):
            return namespace, name
    parts = str(claims.get("sub", "")).split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        return parts[2], parts[3]
    return None, None


def _host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


class KubernetesAssertion:
    """A service-account token for api://AzureADTokenExchange from the TokenRequest API."""

    def __init__(self, options: Mapping[str, Any], environ: Callable[[], Mapping[str, str]],
                 allowlist: Allowlist) -> None:
        self._options = options
        self._environ = environ
        self._allowlist = allowlist
        self._session: aiohttp.ClientSession | None = None
        self._ca_file: str | None = None

    async def _client(self, target: KubernetesTarget, ca_file: str) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed or self._ca_file != ca_file:
            if self._session is not None:
                await self._session.close()
            context = await _cluster_ssl(target.ca_path, ca_file)
            self._session = aiohttp.ClientSession(   # the pod's token goes there: never to metadata
                connector=aiohttp.TCPConnector(ssl=context,
                                               socket_factory=socket_factory(KUBERNETES_ADDRESSES)),
                timeout=aiohttp.ClientTimeout(total=KUBERNETES_TIMEOUT_SECONDS))
            self._ca_file = ca_file
        return self._session

    async def assertion(self) -> str:
        import aiohttp

        # every field is checked before the first file is read or the first byte is sent
        target = kubernetes_target(self._options, self._environ, self._allowlist)
        token_file = await allowed_file(self._allowlist, target.token_path, "assertion.token_path")
        ca_file = await allowed_file(self._allowlist, target.ca_path, "assertion.ca_path")
        pod_token = await read_token_file(target.token_path, "assertion.token_path",
                                          "the pod's service-account token", opened=token_file)
        namespace, service_account = await pod_names(target, pod_token, self._allowlist)
        target = replace(target, namespace=namespace, service_account=service_account)
        url = (f"{target.api_server}/api/v1/namespaces/{quote(namespace, safe='')}/serviceaccounts/"
               f"{quote(service_account, safe='')}/token")
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [EXCHANGE_AUDIENCE], "expirationSeconds": TOKEN_REQUEST_SECONDS}}
        session = await self._client(target, ca_file)
        try:
            async with session.post(url, json=body, headers={"Authorization": f"Bearer {pod_token}",
                                                             "Accept": "application/json"}) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
            if isinstance(getattr(exc, "os_error", None), AddressRefused):
                raise CredentialProblem(f"the Kubernetes API server at {target.api_server} is refused by the "
                                        f"address policy: {exc.os_error.reason}",   # type: ignore[union-attr]
                                        field="assertion.api_server") from None
            field = ("assertion.ca_path" if isinstance(exc, aiohttp.ClientConnectorCertificateError)
                     else "assertion.api_server")
            raise transport_problem(exc, target.api_server, "the Kubernetes API server", field) from None
        if status in (200, 201):
            token = _status_token(text)
            if token:
                return token
            raise CredentialProblem(f"the Kubernetes API server at {target.api_server} answered a "
                                    "TokenRequest without status.token", field="assertion.api_server")
        raise _kubernetes_refusal(status, text, target)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _cluster_ssl(ca_path: str, ca_file: str) -> ssl.SSLContext:
    """Trusting the cluster CA in `ca_file` (what allowed_file() resolved auth.assertion.ca_path to)."""
    try:
        return await asyncio.to_thread(ssl.create_default_context, cafile=ca_file)
    except FileNotFoundError:
        raise CredentialProblem(f"the cluster CA file {ca_path} does not exist: check auth.assertion.ca_path",
                                field="assertion.ca_path") from None
    except (OSError, ssl.SSLError) as exc:
        raise CredentialProblem(f"the cluster CA file {ca_path} is not a PEM CA bundle ({exc}): check "
                                "auth.assertion.ca_path", field="assertion.ca_path") from None


def _status_token(text: str) -> str | None:
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    token = doc.get("status", {}).get("token") if isinstance(doc, dict) else None
    return token if isinstance(token, str) and token else None


def _kubernetes_refusal(status: int, text: str, target: KubernetesTarget) -> CredentialProblem:
    try:
        doc = json.loads(text)
        message = str(doc.get("message") or "")[:300] if isinstance(doc, dict) else ""
    except ValueError:
        message = ""
    said = f" ({message})" if message else ""
    sa = f"{target.namespace}/{target.service_account}"
    if status == 401:
        return CredentialProblem(f"the Kubernetes API server refused the pod's service-account token "
                                 f"read from {target.token_path} (HTTP 401{said}): check "
                                 "auth.assertion.token_path", field="assertion.token_path")
    if status == 403:
        return CredentialProblem(f"the pod's service account may not create tokens for service account {sa} "
                                 f"(HTTP 403{said}): grant it 'create' on serviceaccounts/token for {sa} "
                                 "(RBAC), or fix auth.assertion.namespace and service_account",
                                 field="assertion.service_account")
    if status == 404:
        return CredentialProblem(f"service account {sa} does not exist (HTTP 404{said}): check "
                                 "auth.assertion.namespace and service_account",
                                 field="assertion.service_account")
    return CredentialProblem(f"the Kubernetes API server at {target.api_server} refused the TokenRequest for "
                             f"{sa} (HTTP {status}{said})", field="assertion.api_server",
                             transient=status >= 500)


def build_assertion_source(options: Mapping[str, Any], environ: Callable[[], Mapping[str, str]],
                           managed_identity: Callable[[str], AsyncTokenCredential] | None = None, *,
                           allowlist: Allowlist) -> AssertionSource:
    source = options.get("source")
    if source == "managed-identity":
        return ManagedIdentityAssertion(str(options["client_id"]), managed_identity)
    if source == "token-file":
        return TokenFileAssertion(str(options["path"]), allowlist)
    if source == "kubernetes":
        return KubernetesAssertion(options, environ, allowlist)
    raise CredentialProblem(f"auth.assertion.source {source!r} is not one of managed-identity, token-file, "
                            "kubernetes", field="assertion.source")
