"""Where an account may make the gateway act with its own identity, and which secrets it may read.

An account names an environment variable (`key_env`, `secret_env`) the gateway reads, an Entra scope
and authority it asks for a token (as its managed identity or app registration), an endpoint it sends
that key or token to, files it reads a credential from (`certificate_path`, a workload-identity
assertion's `path`, `token_path`, `ca_path`) and a Kubernetes API server it sends the pod's own
service-account token to (`api_server`). Left open, whoever may edit an account could have the gateway
read the tables' connection string or any file on disk, get a token for Azure Storage or Resource
Manager, and send any of them (or the pod's Kubernetes identity) to a host of their choosing. So each
is held to built-in values plus additions only the operator can make (settings): checked when a file is
applied or /manage writes an account, when a stored configuration is loaded, and again where a
credential is built (for files, once more after their symbolic links are resolved).

Errors never repeat the offending value (it is the caller's text); they say what is allowed.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..settings import Settings
    from .model import Account, Agent, McpServer

DEFAULT_SECRET_PREFIX = "GATEWAY_SECRET_"
# Azure OpenAI, Azure AI Services and Foundry resources, in the public, US Government and China clouds.
ENDPOINT_SUFFIXES = tuple(f"{service}.{cloud}" for cloud in ("azure.com", "azure.us", "azure.cn")
                          for service in ("openai", "cognitiveservices", "services.ai"))
# The Cognitive Services resource of each cloud (the default the gateway derives) and Foundry projects.
ENTRA_SCOPES = frozenset({"https://cognitiveservices.azure.com/.default",
                          "https://cognitiveservices.azure.us/.default",
                          "https://cognitiveservices.azure.cn/.default",
                          "https://ai.azure.com/.default"})
AUTHORITY_HOSTS = frozenset({"https://login.microsoftonline.com", "https://login.microsoftonline.us",
                             "https://login.chinacloudapi.cn", "https://login.partner.microsoftonline.cn"})
ENV_FIELDS = ("key_env", "secret_env")
# Tokens for these resources would let whoever runs an MCP server or agent act on Azure itself with the
# gateway's identity: never issued for one, even when listed in GATEWAY_ENTRA_SCOPES.
CONTROL_PLANE_SCOPE_HOSTS = ("management.azure.com", "management.core.windows.net",
                             "management.usgovcloudapi.net", "management.chinacloudapi.cn",
                             "storage.azure.com", "vault.azure.net",
                             "vault.usgovcloudapi.net", "vault.azure.cn", "graph.microsoft.com",
                             "graph.microsoft.us", "microsoftgraph.chinacloudapi.cn", "database.windows.net",
                             "servicebus.azure.net", "eventhubs.azure.net")
_APP_ID_URI_RE = re.compile(r"^api://[A-Za-z0-9][A-Za-z0-9._~/-]{0,200}/\.default$")
# Where Kubernetes projects a pod's service-account token and cluster CA, and AKS workload identity its
# federated token (/var/run/secrets/azure/tokens): credential files are read from here, or from a
# directory listed in GATEWAY_CREDENTIAL_FILE_DIRS, and nowhere else.
CREDENTIAL_FILE_DIR = "/var/run/secrets/"
ASSERTION_FILE_FIELDS = ("path", "token_path", "ca_path")

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_LABEL_RE = re.compile(rf"^{_LABEL}$")
_HOST_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")   # ASCII, lower case, no trailing dot
_NETLOC_RE = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[^:@\[\]]+)(?::(?P<port>[0-9]{1,5}))?$")
_ENV_RE = re.compile(r"^[A-Z0-9_]+$")
_PROJECT_PATH_RE = re.compile(r"^/api/projects/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}/?$")


class NotAllowed(ValueError):
    """A value outside the allowlist; `field` is relative to the account (e.g. auth.scope)."""

    def __init__(self, problem: str, field: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.field = field


@dataclass(frozen=True, slots=True)
class _Url:
    scheme: str
    host: str
    port: int | None
    path: str


def _split(url: str) -> _Url:
    """The parts of an absolute URL, refusing anything two URL parsers could read differently
    (user information, backslashes, non-ASCII, upper case scheme, a query or fragment)."""
    if not url.isascii() or any(ord(c) <= 0x20 or ord(c) == 0x7F or c in "\\@?#%" for c in url):
        raise NotAllowed("must be a plain ASCII URL without user information, query, fragment, "
                         "escapes or backslashes")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not url.startswith(f"{parts.scheme}://"):
        raise NotAllowed("must be an https URL")
    match = _NETLOC_RE.match(parts.netloc)
    if match is None:
        raise NotAllowed("must be an https URL with a host name (and no user information)")
    port = int(match["port"]) if match["port"] is not None else None
    return _Url(parts.scheme, match["host"], port, parts.path)


def host_name(text: str) -> str:
    """A lower-case DNS host name as an operator lists it in a setting; ValueError otherwise."""
    host = text.strip().lower()
    if not _HOST_RE.match(host):
        raise ValueError(f"{text.strip()!r} must be a host name (no scheme, port or path)")
    return host


def https_origin(text: str) -> str:
    """`https://host[:port]` with the host in lower case and no trailing slash; ValueError for
    anything with a path, user information, query or another scheme."""
    try:
        url = _split(text.strip())
    except NotAllowed as exc:
        raise ValueError(exc.problem) from None
    host = url.host.lower()
    if url.scheme != "https" or url.path not in ("", "/") or not (_HOST_RE.match(host) or _is_ip(host)):
        raise ValueError("must be an https URL, https://<host>[:port] without a path")
    return f"https://{host}" + (f":{url.port}" if url.port not in (None, 443) else "")


def _plain_absolute(path: str) -> bool:
    """An absolute POSIX path whose every segment names something: no empty, `.` or `..` segment, no
    NUL or other control character, so what it names is what it says, before any link is followed."""
    if not path.startswith("/") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return False
    return all(segment not in ("", ".", "..") for segment in path[1:].split("/"))


def credential_dir(text: str) -> str:
    """An absolute directory as an operator lists it in a setting, ending with `/`; ValueError otherwise
    (a relative path, `.` or `..` segments, or `/` itself, which would admit every file)."""
    directory = text.strip().rstrip("/")
    if not directory or not _plain_absolute(directory):
        raise ValueError("must be an absolute directory other than / without . or .. segments")
    return directory + "/"


def _under(path: str, directories: frozenset[str]) -> bool:
    return any(path.startswith(directory) and len(path) > len(directory) for directory in directories)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Allowlist:
    """The built-in values plus the operator's additions. `Allowlist()` is the strictest: the
    built-in values only, the default prefix, and no plain http."""

    secret_prefix: str = DEFAULT_SECRET_PREFIX
    upstream_hosts: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    authority_hosts: frozenset[str] = frozenset()
    http_loopback: bool = False
    kubernetes_api_servers: frozenset[str] = frozenset()   # https origins, as https_origin() gives them
    in_cluster_api_server: str = ""                        # https://$KUBERNETES_SERVICE_HOST:$..._PORT
    credential_dirs: frozenset[str] = frozenset()          # absolute, ending with /, as credential_dir()
    pod_service_account: str = ""       # the pod's own (GATEWAY_KUBERNETES_SERVICE_ACCOUNT): a default

    @classmethod
    def from_settings(cls, settings: Settings) -> Allowlist:
        return cls(secret_prefix=settings.secret_env_prefix, upstream_hosts=settings.upstream_hosts,
                   scopes=settings.entra_scopes, authority_hosts=settings.authority_hosts,
                   http_loopback=settings.allow_http_loopback,
                   kubernetes_api_servers=settings.kubernetes_api_servers,
                   in_cluster_api_server=settings.kubernetes_in_cluster_api_server,
                   credential_dirs=settings.credential_file_dirs,
                   pod_service_account=settings.kubernetes_service_account)

    def check_env_name(self, name: str) -> None:
        """A variable the configuration names for a secret (key_env, secret_env, headers_env values)."""
        if not (self.secret_prefix and name.startswith(self.secret_prefix)
                and len(name) > len(self.secret_prefix) and _ENV_RE.match(name)):
            raise NotAllowed(f"must name an environment variable starting with {self.secret_prefix} "
                             "(upper case letters, digits, underscores; the prefix is the setting "
                             "GATEWAY_SECRET_ENV_PREFIX)")

    def check_scope(self, scope: str) -> None:
        if scope not in ENTRA_SCOPES and scope not in self.scopes:
            raise NotAllowed("must be https://cognitiveservices.azure.com/.default, "
                             "https://ai.azure.com/.default or a scope listed in GATEWAY_ENTRA_SCOPES")

    def check_authority(self, authority: str) -> None:
        try:
            origin = https_origin(authority)
        except ValueError as exc:
            raise NotAllowed(f"{exc}") from None
        if origin not in AUTHORITY_HOSTS and origin not in self.authority_hosts:
            raise NotAllowed("must be an Entra cloud (https://login.microsoftonline.com, "
                             "https://login.microsoftonline.us, https://login.chinacloudapi.cn, "
                             "https://login.partner.microsoftonline.cn) or listed in GATEWAY_AUTHORITY_HOSTS")

    def check_endpoint(self, endpoint: str, *, foundry: bool = False) -> None:
        """https to <resource>.<an Azure OpenAI, AI Services or Foundry domain> or a listed host, port
        443, no path (a Foundry project's /api/projects/<name> for ai-foundry); plain http only to
        loopback with GATEWAY_DEV_ALLOW_HTTP_LOOPBACK."""
        url = _split(endpoint)
        plain_path = url.path in ("", "/")
        if url.scheme == "http":
            if not (self.http_loopback and is_loopback_host(url.host) and plain_path):
                raise NotAllowed("must use https (plain http is allowed only to a loopback address, "
                                 "without a path, with GATEWAY_DEV_ALLOW_HTTP_LOOPBACK=true)")
            return
        if url.port not in (None, 443):
            raise NotAllowed("must not name a port other than 443")
        if not (plain_path or (foundry and _PROJECT_PATH_RE.match(url.path))):
            raise NotAllowed("must be the resource's base URL, without a path"
                             + (" (or /api/projects/<project>)" if foundry else ""))
        if not self._known_host(url.host):
            raise NotAllowed("must be https://<resource>.openai.azure.com, .cognitiveservices.azure.com or "
                             ".services.ai.azure.com (or the .azure.us and .azure.cn equivalents), in lower "
                             "case, or a host listed in GATEWAY_UPSTREAM_HOSTS")

    def check_api_server(self, api_server: str) -> str:
        """The Kubernetes API server a TokenRequest goes to, as an origin: it carries the pod's own
        service-account token, so only the in-cluster one or one the operator listed; never plain http."""
        try:
            origin = https_origin(api_server)
        except ValueError:
            origin = ""
        if not origin or (origin != self.in_cluster_api_server and origin not in self.kubernetes_api_servers):
            raise NotAllowed("must be the in-cluster API server (https://$KUBERNETES_SERVICE_HOST:"
                             "$KUBERNETES_SERVICE_PORT, used when api_server is left out) or an https origin "
                             "listed in GATEWAY_KUBERNETES_API_SERVERS")
        return origin

    def check_remote_url(self, url: str, *, field: str = "url") -> None:
        """An MCP server's or agent's address: https (any port), or plain http to loopback in
        development. Which addresses its host may resolve to is checked on every connection
        (shared/auth/addresses.py), so this only refuses what no connection could make safe."""
        parts = _split(url)
        if parts.scheme == "http" and not (self.http_loopback and is_loopback_host(parts.host)):
            raise NotAllowed("must use https (plain http is allowed only to a loopback address, with "
                             "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK=true)", field)

    def check_remote_scope(self, scope: str) -> None:
        """A scope the gateway asks a token for on an MCP server's or agent's behalf: an application
        ID URI (api://.../.default) or one listed in GATEWAY_ENTRA_SCOPES, never a control-plane,
        storage, Key Vault or Graph resource."""
        host = urlsplit(scope).hostname or ""
        if any(host == h or host.endswith("." + h) for h in CONTROL_PLANE_SCOPE_HOSTS):
            raise NotAllowed("must not be a Resource Manager, Storage, Key Vault, Graph or other Azure "
                             "data-plane scope: the MCP server or agent would hold the gateway's own power")
        if not _APP_ID_URI_RE.match(scope) and scope not in self.scopes:
            raise NotAllowed("must be an application ID URI such as api://<app>/.default or a scope "
                             "listed in GATEWAY_ENTRA_SCOPES")

    def remote_problem(self, item: McpServer | Agent) -> NotAllowed | None:
        """The first value of an MCP server or agent outside the allowlist, its field relative to it."""
        options = item.auth.options
        checks: list[tuple[str, Callable[[str], object], object]] = [
            ("url", self.check_remote_url, item.url),
            ("card_url", self.check_remote_url, getattr(item, "card_url", None)),
            ("auth.authorization_server", self.check_remote_url, options.get("authorization_server")),
            ("auth.client_secret_env", self.check_env_name, options.get("client_secret_env"))]
        if item.auth.type == "entra":
            checks.append(("auth.scope", self.check_remote_scope, options.get("scope")))
        headers = options.get("headers_env")
        if isinstance(headers, Mapping):
            checks += [(f"auth.headers_env.{h}", self.check_env_name, env) for h, env in headers.items()]
        return _first_refusal(checks)

    def _file_dirs(self) -> frozenset[str]:
        return self.credential_dirs | {CREDENTIAL_FILE_DIR}

    def check_credential_file(self, path: str) -> None:
        """A file the gateway reads a credential from, as written: absolute, plainly named, and under
        /var/run/secrets/ or a directory listed in GATEWAY_CREDENTIAL_FILE_DIRS."""
        if not _plain_absolute(path):
            raise NotAllowed("must be an absolute path without empty, . or .. segments")
        if not _under(path, self._file_dirs()):
            raise NotAllowed(f"must be a file under {CREDENTIAL_FILE_DIR} or under a directory listed in "
                             "GATEWAY_CREDENTIAL_FILE_DIRS")

    def credential_file(self, path: str) -> str:
        """The file to open for `path`: its symbolic links resolved, and checked again against the
        directories (resolved too: /var/run is often a link to /run), so a link inside an allowed
        directory cannot lead out of it. Touches the file system: call it off the event loop, just
        before the file is read, and read the path it returns."""
        self.check_credential_file(path)
        real = os.path.realpath(path)
        if not _under(real, frozenset(os.path.join(os.path.realpath(d), "") for d in self._file_dirs())):
            raise NotAllowed(f"must not lead (through a symbolic link) out of {CREDENTIAL_FILE_DIR} and the "
                             "directories listed in GATEWAY_CREDENTIAL_FILE_DIRS")
        return real

    def _known_host(self, host: str) -> bool:
        if not _HOST_RE.match(host):
            return False
        if host in self.upstream_hosts:
            return True
        label, _, suffix = host.partition(".")
        return suffix in ENDPOINT_SUFFIXES and bool(_LABEL_RE.match(label))

    def account_problem(self, account: Account) -> NotAllowed | None:
        """The first value of `account` outside the allowlist, its field relative to the account."""
        options = account.auth.options

        def endpoint(value: str) -> None:
            self.check_endpoint(value, foundry=account.kind == "ai-foundry")

        assertion = options.get("assertion")
        assertion = assertion if isinstance(assertion, Mapping) else {}
        checks: list[tuple[str, Callable[[str], object], object]] = [("endpoint", endpoint, account.endpoint)]
        checks += [(f"auth.{key}", self.check_env_name, options.get(key)) for key in ENV_FIELDS]
        checks += [("auth.scope", self.check_scope, options.get("scope")),
                   ("auth.authority_host", self.check_authority, options.get("authority_host")),
                   ("auth.certificate_path", self.check_credential_file, options.get("certificate_path")),
                   ("auth.assertion.api_server", self.check_api_server, assertion.get("api_server"))]
        checks += [(f"auth.assertion.{key}", self.check_credential_file, assertion.get(key))
                   for key in ASSERTION_FILE_FIELDS]
        return _first_refusal(checks)


def _first_refusal(checks: list[tuple[str, Callable[[str], object], object]]) -> NotAllowed | None:
    """The first check that refuses its value (None values are not checked), with its field."""
    for field, check, value in checks:
        if value is None:
            continue
        try:
            check(str(value))
        except NotAllowed as exc:
            return NotAllowed(exc.problem, field)
    return None
