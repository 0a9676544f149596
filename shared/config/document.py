"""Writes configuration values back as the file format (docs/configuration.md): defaults left out, so that
`export` gives back what `apply` read, and plans compare documents rather than objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import console_sign_in
from .model import (
    DEFAULT_API_VERSIONS,
    DEFAULT_REMOTE_TIMEOUT_S,
    Account,
    Agent,
    Budget,
    Collaborator,
    Condition,
    Config,
    ExternalIdentity,
    IdentityProvider,
    Limit,
    McpServer,
    Model,
    Price,
    RateLimit,
    Team,
)
from .schema import PARSERS
from .teams import document as team_document


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    return value


def item_document(item: Any) -> dict[str, Any]:
    """One resource as the file writes it: defaults left out, so export round-trips to the same file."""
    if isinstance(item, IdentityProvider):
        d: dict[str, Any] = {"name": item.name}
        if item.discovery:
            d["discovery"] = True
        if item.jwks_uri:
            d["jwks_uri"] = item.jwks_uri
        if item.issuer:
            d["issuer"] = item.issuer
        if item.audiences:
            d["audiences"] = list(item.audiences)
        if item.unique_id_claim != "sub":
            d["unique_id_claim"] = item.unique_id_claim
        if item.email_claim != "email":
            d["email_claim"] = item.email_claim
        if item.allow_private_network:
            d["allow_private_network"] = True
        if item.groups_from_graph:
            d["groups_from_graph"] = True
        return {**d, **console_sign_in.document(item)}
    if isinstance(item, ExternalIdentity):
        d = {"name": item.name, "identity_provider": item.identity_provider}
        if item.claims:
            d["claims"] = _thaw(item.claims)
        return d
    if isinstance(item, Team):
        return team_document(item)
    if isinstance(item, Account):
        d = {"name": item.name, "kind": item.kind, "endpoint": item.endpoint,
             "auth": {"type": item.auth.type, **_thaw(item.auth.options)}}
        if item.api_style != "deployments":
            d["api_style"] = item.api_style
        if item.api_version != DEFAULT_API_VERSIONS.get(item.api_style):
            d["api_version"] = item.api_version
        return d
    if isinstance(item, Model):
        d = {"name": item.name}
        if item.workspace:
            d["workspace"] = item.workspace
        d["targets"] = [{"account": t.account, "deployment": t.deployment} for t in item.targets]
        if item.max_output_tokens is not None:
            d["max_output_tokens"] = item.max_output_tokens
        return d
    if isinstance(item, RateLimit | Budget | Price):
        return _limits_document(item)
    if isinstance(item, Collaborator):
        return {"resource": item.resource, "principal": item.principal, "role": item.role}
    if isinstance(item, McpServer | Agent):
        return _remote_document(item)
    return {"name": item.name}


def _remote_document(item: McpServer | Agent) -> dict[str, Any]:
    d: dict[str, Any] = {"name": item.name}
    for key in ("workspace", "url", "card_url"):
        if getattr(item, key, None):
            d[key] = getattr(item, key)
    if item.auth.type != "none" or item.auth.options:
        d["auth"] = {"type": item.auth.type, **_thaw(item.auth.options)}
    tools = getattr(item, "tools", None)
    if tools is not None and not tools.everything:
        d["tools"] = {k: list(v) for k, v in (("allow", tools.allow), ("deny", tools.deny)) if v}
    if item.timeout_s != DEFAULT_REMOTE_TIMEOUT_S:
        d["timeout_s"] = _number(item.timeout_s)
    if item.allow_private_network:
        d["allow_private_network"] = True
    return d


def _number(value: float) -> float | int:
    """50 rather than 50.0: the file as a person wrote it."""
    return int(value) if value.is_integer() else value


def _when(conditions: tuple[Condition, ...]) -> dict[str, Any]:
    return {c.field: {"not_in" if c.negate else "in": list(c.values)} for c in conditions}


def _limits(limits: tuple[Limit, ...]) -> list[dict[str, Any]]:
    return [{limit.metric: limit.amount, "per": limit.window} for limit in limits]


def _limits_document(item: RateLimit | Budget | Price) -> dict[str, Any]:
    """A rate limit, budget or price, keys in the order the file shows them, defaults left out."""
    if isinstance(item, Price):
        d: dict[str, Any] = {"model": item.model, "input": _number(item.input)}
        if item.cached_input is not None:
            d["cached_input"] = _number(item.cached_input)
        d["output"] = _number(item.output)
        if item.effective:
            d["from"] = item.effective
        return d
    d = {"name": item.name}
    if item.when:
        d["when"] = _when(item.when)
    if item.per:
        d["per"] = list(item.per)
    if isinstance(item, Budget):
        d["usd"] = {spend.window: _number(spend.usd) for spend in item.spends}
        if item.on_store_error != "deny":
            d["on_store_error"] = item.on_store_error
        return d
    d["limits"] = _limits(item.limits)
    if item.overrides:
        d["overrides"] = [{"bucket": dict(o.bucket), "limits": _limits(o.limits)} for o in item.overrides]
    if item.mode != "enforce":
        d["mode"] = item.mode
    return d


def to_document(config: Config) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for section in PARSERS:
        doc[section] = [item_document(i) for i in sorted(getattr(config, section), key=lambda i: i.name)]
    doc["collaborators"] = [item_document(c) for c in
                            sorted(config.collaborators, key=lambda c: (c.resource, c.principal))]
    return doc
