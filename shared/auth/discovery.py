"""OpenID Connect discovery: the provider's jwks_uri from {issuer}/.well-known/openid-configuration.

The document must name exactly the configured issuer (OpenID Connect Discovery 1.0, section 4.3), so a
document served for someone else cannot redirect our key fetches. The jwks_uri it names is then fetched
under the same rules as a configured one.
"""

from __future__ import annotations

from typing import Any

from .. import strict_json
from .redact import show

WELL_KNOWN = "/.well-known/openid-configuration"


class DiscoveryError(ValueError):
    """The discovery document is unusable; the message says why."""


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + WELL_KNOWN


def document(raw: bytes, issuer: str) -> dict[str, Any]:
    """The discovery document, once it is a JSON object that names `issuer` exactly (a document naming
    another issuer would let one provider speak for another)."""
    try:
        doc = strict_json.loads(raw)
    except strict_json.StrictJSONError as exc:
        raise DiscoveryError(f"discovery document is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise DiscoveryError("discovery document is not a JSON object")
    if doc.get("issuer") != issuer:
        raise DiscoveryError(f"discovery document names issuer {show(doc.get('issuer'))}, "
                             f"not the configured {show(issuer)}")
    return doc


def jwks_uri_from(raw: bytes, issuer: str) -> str:
    doc = document(raw, issuer)
    uri = doc.get("jwks_uri")
    if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
        raise DiscoveryError("discovery document has no absolute jwks_uri")
    return uri
