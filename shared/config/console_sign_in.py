"""An identity provider's console sign-in fields: the public client the operator console signs in with
(authorization code + PKCE) and the scopes it asks for.

The client id goes into the authorization URL and the token request, so it is held to the characters
client ids use (Entra GUIDs, Okta ids, `api://` style names); scopes are RFC 6749 scope tokens, one of
which usually names the gateway's API (`api://ai-gateway/.default`) so the access token is for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .fields import ConfigError, read_matching

FIELDS = ("console_client_id", "console_scopes")
DEFAULT_SCOPES: tuple[str, ...] = ("openid",)
MAX_SCOPES = 20
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._:/-]{1,256}$")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), bounded here
SCOPE_RE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,256}$")


def _scopes(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_SCOPES:
        raise ConfigError(where, f"must be a list of 1 to {MAX_SCOPES} scopes")
    scopes = tuple(read_matching(s, f"{where}[{i}]", SCOPE_RE, "must be one scope: printable ASCII "
                                 "without spaces, quotes or backslashes, at most 256")
                   for i, s in enumerate(value))
    if len(set(scopes)) != len(scopes):
        raise ConfigError(where, "names a scope twice")
    return scopes


def read(d: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The IdentityProvider keywords of the console sign-in fields of record `d`."""
    client_id = d.get("console_client_id")
    if client_id is not None:
        client_id = read_matching(client_id, f"{where}.console_client_id", CLIENT_ID_RE,
                                  "must be 1 to 256 letters, digits and . _ : / -")
    if "console_scopes" not in d or d["console_scopes"] is None:
        return {"console_client_id": client_id, "console_scopes": DEFAULT_SCOPES}
    if client_id is None:
        raise ConfigError(f"{where}.console_scopes", "is only used with console_client_id")
    return {"console_client_id": client_id,
            "console_scopes": _scopes(d["console_scopes"], f"{where}.console_scopes")}


def document(provider: Any) -> dict[str, Any]:
    """The fields as the file writes them: left out when unset or the default."""
    d: dict[str, Any] = {}
    if provider.console_client_id is not None:
        d["console_client_id"] = provider.console_client_id
    if provider.console_scopes != DEFAULT_SCOPES:
        d["console_scopes"] = list(provider.console_scopes)
    return d
