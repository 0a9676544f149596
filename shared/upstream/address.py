"""Where a request for one target goes and what it carries: the URL from parsed parts (never caller
text), the body and headers for the account's API style, and the rule that upstream traffic uses https.

The styles: `deployments` (Azure OpenAI's /openai/deployments/{deployment}/..., the caller's bytes),
`v1` (/openai/v1/..., the deployment named in `model`), and `models`, the Azure AI Model Inference API
of a Foundry resource (/models/..., the deployment named in `model`, its own api-version), which serves
chat completions and embeddings only.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import quote, urlencode, urlsplit

from ..config.allowlist import is_loopback_host
from ..config.model import Account, Target
from ..errors import InvalidRequest, Unavailable

log = logging.getLogger("gateway.upstream.address")

# Operations Azure serves only on its v1 surface (model named in the body), whatever the account's style.
V1_ONLY = frozenset({"responses"})
# What the Azure AI Model Inference API serves.
MODELS_OPERATIONS = frozenset({"chat/completions", "embeddings"})
# Callers speak OpenAI's API, whose parameters the Model Inference API does not all define: without
# this it refuses them (`stream_options` among them, which the gateway itself sends to learn a stream's
# usage); with it they reach the model.
MODELS_HEADERS: Mapping[str, str] = MappingProxyType({"extra-parameters": "pass-through"})
NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@functools.lru_cache(maxsize=1024)
def _endpoint_allowed(endpoint: str, allow_http_loopback: bool) -> bool:
    parts = urlsplit(endpoint)
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and allow_http_loopback and is_loopback_host(parts.hostname or "")


def check_endpoint(account: Account, allow_http_loopback: bool) -> None:
    """https only; plain http only on loopback, and only with the named development bypass (the
    answer depends on the endpoint text alone, so it is computed once per endpoint). The endpoint is
    logged for the operator, not put in the caller's message."""
    if _endpoint_allowed(account.endpoint, allow_http_loopback):
        return
    log.warning("account %s: endpoint %r is not https", account.name, account.endpoint)
    raise Unavailable(f"account {account.name}: its endpoint must use https (plain http is allowed only "
                      "on loopback with GATEWAY_DEV_ALLOW_HTTP_LOOPBACK=true)")


def serves(account: Account, operation: str) -> bool:
    return account.api_style != "models" or operation in MODELS_OPERATIONS


def uses_v1(account: Account, operation: str) -> bool:
    return account.api_style == "v1" or operation.split("/", 1)[0] in V1_ONLY


def upstream_url(account: Account, target: Target, operation: str, query: Mapping[str, str]) -> str:
    """The caller's api-version is kept for the deployments style only: the models style has versions
    of its own, and v1 takes none."""
    if account.api_style == "models":
        if not serves(account, operation):
            raise InvalidRequest(f"account {account.name} does not serve {operation}")
        return _url(account.endpoint, "models", operation, "", account.api_version)
    if uses_v1(account, operation):
        return f"{account.endpoint}/openai/v1/{operation}"
    version = query.get("api-version")
    return _url(account.endpoint, "deployments", operation, target.deployment,
                account.api_version if version is None else version)


@functools.lru_cache(maxsize=1024)
def _url(endpoint: str, style: str, operation: str, deployment: str, version: str) -> str:
    """Built once per distinct address: quoting and encoding were a measurable part of a request."""
    if style == "models":
        return f"{endpoint}/models/{operation}?{urlencode({'api-version': version})}"
    return f"{endpoint}/openai/deployments/{quote(deployment, safe='')}/{operation}?" \
        f"{urlencode({'api-version': version})}"


def upstream_body(account: Account, target: Target, operation: str, raw: bytes,
                  doc: Mapping[str, object]) -> bytes:
    """The caller's bytes, except that the v1 and models styles name the deployment in `model`."""
    if account.api_style != "models" and not uses_v1(account, operation):
        return raw
    return json.dumps({**doc, "model": target.deployment}, separators=(",", ":")).encode()


def upstream_headers(account: Account) -> Mapping[str, str]:
    """Headers the account's style needs on every request."""
    return MODELS_HEADERS if account.api_style == "models" else NO_HEADERS

