"""The only reader of the environment: every setting, its default and its meaning, parsed once.

`SETTINGS` is the catalogue the README, `local.settings.sample.json` and the infrastructure stacks are
checked against. `load()` turns an environment into a frozen `Settings`; a bad value raises
`SettingsError` naming the setting to fix.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .config.allowlist import DEFAULT_SECRET_PREFIX, credential_dir, host_name, https_origin
from .config.schema import KUBERNETES_NAME_RE


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    default: str
    meaning: str
    in_azure: bool  # set by the infrastructure stacks when deployed


SETTINGS: tuple[Setting, ...] = (
    Setting("GATEWAY_TABLES_CONNECTION", "",
            "Connection string of the configuration tables (UseDevelopmentStorage=true for Azurite).",
            False),
    Setting("GATEWAY_TABLES_ENDPOINT", "",
            "Instead of a connection string: the table endpoint, reached with the managed identity.",
            True),
    Setting("AZURE_CLIENT_ID", "",
            "Client id of the user-assigned managed identity used for the tables.", True),
    Setting("GATEWAY_TABLE_PREFIX", "gw", "Prefix of every table name (letters and digits).", True),
    Setting("GATEWAY_ADMINS", "", "Comma-separated principals that are gateway admins.", True),
    Setting("GATEWAY_CONFIG_REFRESH_SECONDS", "10",
            "How often each process checks the tables for a configuration change.", True),
    Setting("GATEWAY_DEV_ALLOW_HTTP_LOOPBACK", "false",
            "true lets JWKS URIs and account endpoints use plain http on loopback only. Never in Azure.",
            False),
    Setting("GATEWAY_SECRET_ENV_PREFIX", DEFAULT_SECRET_PREFIX,
            "Prefix every environment variable named by key_env or secret_env must have.", False),
    Setting("GATEWAY_UPSTREAM_HOSTS", "",
            "Comma-separated host names accounts may use besides the Azure OpenAI and Foundry ones.", False),
    Setting("GATEWAY_ENTRA_SCOPES", "",
            "Comma-separated Entra scopes accounts may ask tokens for besides the Cognitive Services and "
            "Foundry ones.", False),
    Setting("GATEWAY_AUTHORITY_HOSTS", "",
            "Comma-separated https authority hosts accounts may use besides the Entra clouds.", False),
    Setting("GATEWAY_JWT_LEEWAY_SECONDS", "60", "Clock skew allowed on exp, nbf and iat.", True),
    Setting("GATEWAY_JWKS_TTL_SECONDS", "600",
            "How long a provider's keys are fresh before a background refresh.", True),
    Setting("GATEWAY_JWKS_MAX_STALE_SECONDS", "86400",
            "How long last-known-good keys keep being used while a provider fails.", True),
    Setting("GATEWAY_JWKS_COOLDOWN_SECONDS", "30",
            "Least time between two refetches of one provider's keys for an unknown key id.", True),
    Setting("GATEWAY_MAX_BODY_BYTES", "26214400", "Largest request body accepted (bytes).", True),
    Setting("GATEWAY_MAX_BATCH_INPUT_BYTES", "209715200",
            "Largest batch input file the gateway reads to check and rewrite its lines (bytes).", False),
    Setting("GATEWAY_UPSTREAM_TIMEOUT_SECONDS", "120",
            "Longest wait for an upstream answer to start.", True),
    Setting("GATEWAY_LOG_LEVEL", "INFO", "Log level of the gateway's own loggers.", True),
    Setting("APPLICATIONINSIGHTS_CONNECTION_STRING", "",
            "Send traces, metrics and logs to this Application Insights resource (Azure Monitor).", True),
    Setting("OTEL_EXPORTER_OTLP_ENDPOINT", "",
            "Send traces, metrics and logs to this OTLP/HTTP endpoint instead (when no connection string).",
            False),
    # The local host (`python -m shared serve`) only: in Azure the Functions host owns the connections.
    Setting("GATEWAY_SERVER_HEADER_TIMEOUT_SECONDS", "10",
            "Local host: longest time from connecting (or from a request's first byte) to a complete "
            "request head; then 408 and close.", False),
    Setting("GATEWAY_SERVER_BODY_TIMEOUT_SECONDS", "30",
            "Local host: longest time a request body may make no progress; then 408 and close.", False),
    Setting("GATEWAY_SERVER_KEEPALIVE_SECONDS", "5",
            "Local host: how long an idle keep-alive connection is kept open.", False),
    Setting("GATEWAY_SERVER_MAX_HEADER_BYTES", "32768",
            "Local host: largest request head (request line and headers); larger ones get 431.", False),
    Setting("GATEWAY_SERVER_MAX_CONNECTIONS", "1000",
            "Local host: most open connections; further ones are closed at once.", False),
    Setting("GATEWAY_KUBERNETES_API_SERVERS", "",
            "Comma-separated https origins a kubernetes assertion's api_server may name besides the "
            "in-cluster API server.", False),
    Setting("GATEWAY_CREDENTIAL_FILE_DIRS", "",
            "Comma-separated absolute directories credential files (token_path, ca_path, a token file, "
            "certificate_path) may be read from besides /var/run/secrets/.", False),
    Setting("GATEWAY_KUBERNETES_SERVICE_ACCOUNT", "",
            "In a pod: its own service account (the Downward API's spec.serviceAccountName), the default "
            "of a kubernetes assertion's service_account.", False),
    Setting("GATEWAY_LIMITS_STORE", "table",
            "Where rate-limit and budget counters are shared: table (the configuration's storage) or "
            "redis (GATEWAY_LIMITS_REDIS_URL).", False),
    Setting("GATEWAY_LIMITS_REDIS_URL", "",
            "With GATEWAY_LIMITS_STORE=redis: rediss://host:port of an Azure Managed Redis reached with the "
            "managed identity (redis:// on loopback only, with GATEWAY_DEV_ALLOW_HTTP_LOOPBACK).", False),
    Setting("GATEWAY_LIMITS_DEFAULT_MAX_TOKENS", "4096",
            "The output cap injected into a request that sent none, so its reservation bounds its cost.",
            False),
    Setting("GATEWAY_PUBLIC_URL", "",
            "The gateway's external base URL: issuer of its identity assertions, MCP resource metadata, "
            "agent cards, OAuth redirects. Default https://$WEBSITE_HOSTNAME in Azure, else "
            "http://127.0.0.1:$GATEWAY_PORT.", False),
    Setting("GATEWAY_GRAPH_URL", "https://graph.microsoft.com",
            "Microsoft Graph, where an identity provider with groups_from_graph reads an Entra user's groups "
            "when the token left them out (sovereign clouds: their Graph host). https; plain http only to "
            "loopback with GATEWAY_DEV_ALLOW_HTTP_LOOPBACK.", False),
    Setting("GATEWAY_SEALING_KEY", "",
            "Base64 secret of at least 32 bytes (a Key Vault reference in Azure) sealing MCP session ids, "
            "OAuth state and stored OAuth tokens, and deriving the identity-assertion key; the same on every "
            "instance. Unset: a random key per process.", True),
    Setting("GATEWAY_PORT", "7071",
            "Local host: the port `python -m shared serve` and `make run` serve the gateway on.", False),
)

_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,29}$")


@dataclass(frozen=True, slots=True)
class Settings:
    tables_connection: str
    tables_endpoint: str
    azure_client_id: str
    table_prefix: str
    admins: frozenset[str]
    config_refresh_seconds: float
    allow_http_loopback: bool
    jwt_leeway_seconds: int
    jwks_ttl_seconds: float
    jwks_max_stale_seconds: float
    jwks_cooldown_seconds: float
    max_body_bytes: int
    upstream_timeout_seconds: float
    log_level: str
    appinsights_connection_string: str = ""
    otlp_endpoint: str = ""
    secret_env_prefix: str = DEFAULT_SECRET_PREFIX
    upstream_hosts: frozenset[str] = frozenset()
    entra_scopes: frozenset[str] = frozenset()
    authority_hosts: frozenset[str] = frozenset()
    server_header_timeout_seconds: float = 10.0
    server_body_timeout_seconds: float = 30.0
    server_keepalive_seconds: float = 5.0
    server_max_header_bytes: int = 32768
    server_max_connections: int = 1000
    kubernetes_api_servers: frozenset[str] = frozenset()
    kubernetes_in_cluster_api_server: str = ""
    credential_file_dirs: frozenset[str] = frozenset()
    kubernetes_service_account: str = ""
    port: int = 7071
    limits_store: str = "table"
    limits_redis_url: str = ""
    limits_default_max_tokens: int = 4096
    public_url: str = "http://127.0.0.1:7071"
    graph_url: str = "https://graph.microsoft.com"
    sealing_key: bytes | None = None
    max_batch_input_bytes: int = 209_715_200

    def require_tables(self) -> None:
        if not (self.tables_connection or self.tables_endpoint):
            raise SettingsError(
                "set GATEWAY_TABLES_CONNECTION (a connection string, UseDevelopmentStorage=true for "
                "Azurite) or GATEWAY_TABLES_ENDPOINT (reached with the managed identity)"
            )


def _number(env: Mapping[str, str], name: str, *, integer: bool = False,
            minimum: float = 0) -> float:
    raw = env[name].strip()
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _limits_store(env: Mapping[str, str]) -> str:
    store = env["GATEWAY_LIMITS_STORE"].strip().lower()
    if store not in ("table", "redis"):
        raise SettingsError(f"GATEWAY_LIMITS_STORE must be table or redis, got {store!r}")
    if store == "redis" and not env["GATEWAY_LIMITS_REDIS_URL"].strip():
        raise SettingsError("GATEWAY_LIMITS_STORE=redis needs GATEWAY_LIMITS_REDIS_URL")
    return store


def _port(env: Mapping[str, str], name: str) -> int:
    port = int(_number(env, name, integer=True, minimum=1))
    if port > 65535:
        raise SettingsError(f"{name} must be a TCP port (1 to 65535), got {env[name].strip()!r}")
    return port


def _boolean(env: Mapping[str, str], name: str) -> bool:
    raw = env[name].strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("", "0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {env[name]!r}")


_ENV_PREFIX_RE = re.compile(r"^[A-Z0-9_]+$")
_SCOPE_RE = re.compile(r"^[a-z][a-z0-9+.-]*://[!-~]+$")


def _secret_prefix(env: Mapping[str, str]) -> str:
    """The prefix of secret variables; one that would admit a setting of the gateway's own (the
    tables' connection string) is refused."""
    name = "GATEWAY_SECRET_ENV_PREFIX"
    prefix = env[name].strip()
    if not _ENV_PREFIX_RE.match(prefix):
        raise SettingsError(f"{name} must be upper case letters, digits and underscores, got {prefix!r}")
    admitted = [s.name for s in SETTINGS if s.name.startswith(prefix) and s.name != name]
    if admitted:
        raise SettingsError(f"{name} {prefix!r} would let the configuration read {admitted[0]}: "
                            "choose a prefix of its own, such as GATEWAY_SECRET_")
    return prefix


def _scope(text: str) -> str:
    if not _SCOPE_RE.match(text):
        raise ValueError(f"{text!r} must be a scope URI such as api://<app>/.default")
    return text


def _list(env: Mapping[str, str], name: str, item: Callable[[str], str]) -> frozenset[str]:
    """A comma-separated list, each entry checked (and normalised) by `item`."""
    out = set()
    for raw in env[name].split(","):
        if not raw.strip():
            continue
        try:
            out.add(item(raw.strip()))
        except ValueError as exc:
            raise SettingsError(f"{name}: {exc}") from None
    return frozenset(out)


def _origin(text: str) -> str:
    try:
        return https_origin(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} {exc}") from None


def _directory(text: str) -> str:
    try:
        return credential_dir(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} {exc}") from None


def _in_cluster_api_server(source: Mapping[str, str]) -> str:
    """The API server of the cluster this pod runs in, as the kubelet announces it (not an operator's
    setting): the one a kubernetes assertion may always name. Empty outside a pod, or when they do not
    make an https origin (then only the listed ones may be named)."""
    host = source.get("KUBERNETES_SERVICE_HOST", "").strip()
    port = source.get("KUBERNETES_SERVICE_PORT", "").strip() or "443"
    if not host or not port.isdigit():
        return ""
    try:
        return https_origin(f"https://{f'[{host}]' if ':' in host else host}:{port}")
    except ValueError:
        return ""


def _kubernetes_name(env: Mapping[str, str], name: str) -> str:
    """A Kubernetes object name (a DNS subdomain), or empty: it becomes a segment of the TokenRequest URL."""
    value = env[name].strip()
    if value and not KUBERNETES_NAME_RE.match(value):
        raise SettingsError(f"{name} must be a Kubernetes name (lower case letters, digits, '-' and '.', "
                            f"at most 253), got {value!r}")
    return value


def _one_store(merged: Mapping[str, str]) -> None:
    """Both table settings set would leave which store the gateway and the CLI use to an order of
    precedence nobody sees: a connection string left in local.settings.json would quietly win over
    the endpoint an operator exported to deploy, and `apply` would write to the wrong place."""
    both = ("GATEWAY_TABLES_CONNECTION", "GATEWAY_TABLES_ENDPOINT")
    if all(merged[name].strip() for name in both):
        raise SettingsError(f"{both[0]} and {both[1]} are both set: set only the one naming the store to "
                            "use (an empty value in the environment unsets one from local.settings.json)")


def local_settings_values(path: Path = Path("local.settings.json")) -> dict[str, str]:
    """`Values` of local.settings.json, which Core Tools would put in the environment."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{path} is not valid JSON: {exc}") from None
    values = data.get("Values", {}) if isinstance(data, dict) else {}
    return {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {}


def environment() -> dict[str, str]:
    """The process environment over local.settings.json's Values (the environment wins)."""
    return {**local_settings_values(), **os.environ}


def load(env: Mapping[str, str] | None = None) -> Settings:
    source = environment() if env is None else env
    merged = {s.name: s.default for s in SETTINGS}
    merged.update({k: v for k, v in source.items() if k in merged})
    prefix = merged["GATEWAY_TABLE_PREFIX"].strip()
    if not _PREFIX_RE.match(prefix):
        raise SettingsError(
            f"GATEWAY_TABLE_PREFIX must be a letter then up to 29 letters or digits, got {prefix!r}"
        )
    _one_store(merged)
    level = merged["GATEWAY_LOG_LEVEL"].strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"GATEWAY_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    return Settings(
        tables_connection=merged["GATEWAY_TABLES_CONNECTION"].strip(),
        tables_endpoint=merged["GATEWAY_TABLES_ENDPOINT"].strip().rstrip("/"),
        azure_client_id=merged["AZURE_CLIENT_ID"].strip(),
        table_prefix=prefix,
        admins=frozenset(p.strip() for p in merged["GATEWAY_ADMINS"].split(",") if p.strip()),
        config_refresh_seconds=_number(merged, "GATEWAY_CONFIG_REFRESH_SECONDS", minimum=0.05),
        allow_http_loopback=_boolean(merged, "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK"),
        jwt_leeway_seconds=int(_number(merged, "GATEWAY_JWT_LEEWAY_SECONDS", integer=True)),
        jwks_ttl_seconds=_number(merged, "GATEWAY_JWKS_TTL_SECONDS", minimum=1),
        jwks_max_stale_seconds=_number(merged, "GATEWAY_JWKS_MAX_STALE_SECONDS"),
        jwks_cooldown_seconds=_number(merged, "GATEWAY_JWKS_COOLDOWN_SECONDS"),
        max_body_bytes=int(_number(merged, "GATEWAY_MAX_BODY_BYTES", integer=True, minimum=1024)),
        upstream_timeout_seconds=_number(merged, "GATEWAY_UPSTREAM_TIMEOUT_SECONDS", minimum=0.1),
        log_level=level,
        appinsights_connection_string=merged["APPLICATIONINSIGHTS_CONNECTION_STRING"].strip(),
        otlp_endpoint=merged["OTEL_EXPORTER_OTLP_ENDPOINT"].strip(),
        secret_env_prefix=_secret_prefix(merged),
        upstream_hosts=_list(merged, "GATEWAY_UPSTREAM_HOSTS", host_name),
        entra_scopes=_list(merged, "GATEWAY_ENTRA_SCOPES", _scope),
        authority_hosts=_list(merged, "GATEWAY_AUTHORITY_HOSTS", _origin),
        server_header_timeout_seconds=_number(merged, "GATEWAY_SERVER_HEADER_TIMEOUT_SECONDS", minimum=0.05),
        server_body_timeout_seconds=_number(merged, "GATEWAY_SERVER_BODY_TIMEOUT_SECONDS", minimum=0.05),
        server_keepalive_seconds=_number(merged, "GATEWAY_SERVER_KEEPALIVE_SECONDS", minimum=0.05),
        server_max_header_bytes=int(_number(merged, "GATEWAY_SERVER_MAX_HEADER_BYTES", integer=True,
                                            minimum=1024)),
        server_max_connections=int(_number(merged, "GATEWAY_SERVER_MAX_CONNECTIONS", integer=True,
                                           minimum=1)),
        kubernetes_api_servers=_list(merged, "GATEWAY_KUBERNETES_API_SERVERS", _origin),
        kubernetes_in_cluster_api_server=_in_cluster_api_server(source),
        credential_file_dirs=_list(merged, "GATEWAY_CREDENTIAL_FILE_DIRS", _directory),
        kubernetes_service_account=_kubernetes_name(merged, "GATEWAY_KUBERNETES_SERVICE_ACCOUNT"),
        port=_port(merged, "GATEWAY_PORT"),
        limits_store=_limits_store(merged),
        limits_redis_url=merged["GATEWAY_LIMITS_REDIS_URL"].strip(),
        limits_default_max_tokens=int(_number(merged, "GATEWAY_LIMITS_DEFAULT_MAX_TOKENS", integer=True,
                                              minimum=1)),
        public_url=_public_url(merged, source),
        graph_url=_graph_url(merged),
        sealing_key=_sealing_key(merged),
        max_batch_input_bytes=int(_number(merged, "GATEWAY_MAX_BATCH_INPUT_BYTES", integer=True,
                                          minimum=1024)),
    )


_PUBLIC_URL_RE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(?:/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?$")


def _public_url(env: Mapping[str, str], source: Mapping[str, str]) -> str:
    """Where callers reach the gateway: set, else the App Service host name Azure announces, else the
    local host. Never the request's Host header, which the caller writes."""
    raw = env["GATEWAY_PUBLIC_URL"].strip().rstrip("/")
    if raw:
        if not _PUBLIC_URL_RE.match(raw) or raw.count("://") != 1:
            raise SettingsError("GATEWAY_PUBLIC_URL must be an absolute http(s) URL without query or "
                                f"fragment, got {raw!r}")
        return raw
    host = source.get("WEBSITE_HOSTNAME", "").strip()
    if host and re.fullmatch(r"[A-Za-z0-9.-]+(?::\d+)?", host):
        return f"https://{host.lower()}"
    return f"http://127.0.0.1:{_port(env, 'GATEWAY_PORT')}"


def _graph_url(env: Mapping[str, str]) -> str:
    """An origin the gateway sends its own Graph token to: https, or http to loopback in development."""
    from urllib.parse import urlsplit

    raw = env["GATEWAY_GRAPH_URL"].strip().rstrip("/")
    parts = urlsplit(raw)
    loopback = parts.scheme == "http" and _boolean(env, "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK") \
        and parts.hostname in ("127.0.0.1", "::1", "localhost")
    if (parts.scheme != "https" and not loopback) or not parts.hostname or parts.path or parts.query \
            or parts.fragment or parts.username or parts.password:
        raise SettingsError("GATEWAY_GRAPH_URL must be an https origin such as https://graph.microsoft.com "
                            f"(http only to loopback with GATEWAY_DEV_ALLOW_HTTP_LOOPBACK), got {raw!r}")
    return raw


def _sealing_key(env: Mapping[str, str]) -> bytes | None:
    import base64
    import binascii

    raw = env["GATEWAY_SEALING_KEY"].strip()
    if not raw:
        return None
    try:
        key = base64.b64decode(raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError("GATEWAY_SEALING_KEY must be base64 (e.g. `openssl rand -base64 32`)") from None
    if len(key) < 32:
        raise SettingsError(f"GATEWAY_SEALING_KEY must hold at least 32 bytes, it holds {len(key)}")
    return key


def secret(name: str, *, purpose: str, prefix: str) -> str:
    """A secret from the environment variable an operator named in the configuration (key_env,
    secret_env): read here so that this module stays the only reader of the environment, and only when
    its name has the secret prefix, so the configuration can never read another variable."""
    if not prefix or not name.startswith(prefix) or len(name) == len(prefix):
        raise SettingsError(f"environment variable for {purpose} must start with {prefix or 'a prefix'} "
                            "(GATEWAY_SECRET_ENV_PREFIX): it is not read")
    value = environment().get(name, "")
    if not value:
        raise SettingsError(f"environment variable {name} ({purpose}) is not set")
    return value
