"""An agent's card as callers of the gateway must read it: every way in leads through the gateway.

Both card shapes are rewritten, and a card holding both (as the a2a SDK serves with 0.3 compatibility):

- A2A 1.0: `supportedInterfaces[]` keeps its JSON-RPC entries, each `url` made the gateway's endpoint
  (`<public URL>/agents/<name>`); entries of other bindings (gRPC, HTTP+JSON) go, since the gateway
  relays JSON-RPC only and their URLs would lead around it.
- A2A 0.3: the top-level `url` becomes the endpoint and `preferredTransport` JSONRPC;
  `additionalInterfaces[]` keeps its JSONRPC entries, rewritten.
- Security: the agent's `securitySchemes` and requirements (`securityRequirements`, `security`, and a
  skill's own) describe how the gateway authenticates to the agent, not how a caller reaches the
  gateway; they are replaced by one scheme, `gateway`: an HTTP bearer JWT from the caller's identity
  provider. A caller following the agent's own OAuth flow would get a token the gateway refuses.
- `signatures` go: they sign the agent's URLs, and no longer verify once those are rewritten.

Everything else stays as the agent wrote it: name, description, version, skills, capabilities
(streaming, push notifications, extensions, extended card: the extended card is rewritten the same
way when a caller asks for it), input and output modes, and the informational links `provider.url`,
`documentationUrl` and `iconUrl`, which a client shows rather than sends requests with a token to.
"""

from __future__ import annotations

from typing import Any

JSONRPC = "JSONRPC"
SCHEME_NAME = "gateway"
_DESCRIPTION = ("A JWT from your identity provider, sent to the gateway as 'Authorization: Bearer'; "
                "the gateway authenticates itself to the agent and never forwards your token.")
_LEGACY = ("url", "preferredTransport", "additionalInterfaces")
_DROPPED = frozenset({"signatures", "securitySchemes", "securityRequirements", "security"})


def rewrite_card(card: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """A copy of `card` whose agent URLs are all `endpoint`, secured by the gateway's bearer scheme."""
    out = {key: value for key, value in card.items() if key not in _DROPPED}
    legacy = any(key in card for key in _LEGACY)
    modern = "supportedInterfaces" in card or not legacy
    if modern:
        out["supportedInterfaces"] = _interfaces(card.get("supportedInterfaces"), "protocolBinding", endpoint)
        out["securityRequirements"] = [{"schemes": {SCHEME_NAME: {"list": []}}}]
    if legacy:
        out["url"] = endpoint
        out["preferredTransport"] = JSONRPC
        if "additionalInterfaces" in card:
            out["additionalInterfaces"] = _interfaces(card["additionalInterfaces"], "transport", endpoint)
        out["security"] = [{SCHEME_NAME: []}]
    out["securitySchemes"] = {SCHEME_NAME: _scheme(modern, legacy)}
    if isinstance(card.get("skills"), list):
        out["skills"] = [_skill(skill) for skill in card["skills"]]
    return out


def _interfaces(found: Any, binding: str, endpoint: str) -> list[dict[str, Any]]:
    """The JSON-RPC entries, pointed at `endpoint`, without duplicates."""
    out: list[dict[str, Any]] = []
    for entry in found if isinstance(found, list) else []:
        if not isinstance(entry, dict) or entry.get(binding) != JSONRPC:
            continue
        rewritten = {**entry, "url": endpoint}
        if rewritten not in out:
            out.append(rewritten)
    return out


def _scheme(modern: bool, legacy: bool) -> dict[str, Any]:
    """The bearer scheme in the card's shape (both, merged, for a card of both shapes)."""
    scheme: dict[str, Any] = {}
    if modern:
        scheme["httpAuthSecurityScheme"] = {"scheme": "Bearer", "bearerFormat": "JWT",
                                            "description": _DESCRIPTION}
    if legacy:
        scheme.update(type="http", scheme="bearer", bearerFormat="JWT", description=_DESCRIPTION)
    return scheme


def _skill(skill: Any) -> Any:
    if not isinstance(skill, dict):
        return skill
    return {key: value for key, value in skill.items() if key not in ("securityRequirements", "security")}
