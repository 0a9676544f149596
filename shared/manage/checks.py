"""`POST /manage/identity-providers/{name}/check` and `POST /manage/accounts/{name}/check`: try a stored
provider's keys or account's credential now, as the gateway itself would, and report the outcome in words.

An operator who has just saved a provider or an account wants to know whether it works before a caller
finds out. The check reads the resource from storage (so it works before this process reloads its
configuration), fetches with the gateway's own fetcher or credential (the operator's browser could not:
the console may only talk to the gateway), and answers what was found: key ids, or a token's expiry, or
the error and the field to fix. A token is never part of the answer. Gateway admins only, as for
reading these kinds at all.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from ..callers import authenticate
from ..config.kinds import BY_SECTION
from ..config.schema import NAME_RE, ConfigError, parse_item
from ..http import Call
from . import authz


async def _stored(call: Call, section: str, what: str) -> tuple[Any, Any]:
    """(gateway, the stored resource parsed) for an admin; 403 for anyone else, 404 if absent."""
    gw, view, principal = await authenticate(call)
    caller = authz.Caller.of(view.policy, principal.principals, principal.user)
    authz.require_admin(caller, what)
    kind = BY_SECTION[section]
    name = call.request.path_params["name"]
    found = await gw.store.get(section, name) if NAME_RE.match(name) else None
    if found is None:
        raise authz.not_found(kind.singular, name)
    return gw, found[0]


def _unusable(name: str, exc: ConfigError) -> dict[str, Any]:
    return {"name": name, "ok": False, "error": f"the gateway does not use it as stored: {exc}"}


async def check_provider(call: Call) -> Response:
    gw, doc = await _stored(call, "identity_providers", "check identity providers")
    try:
        provider = parse_item("identity_providers", doc, allowlist=gw.allowlist)   # as the gateway would
    except ConfigError as exc:
        return JSONResponse(_unusable(doc["name"], exc))
    keys = await gw.authenticator.check(provider)
    error = keys.last_error or (None if keys.kids else "the key set holds no usable key")
    return JSONResponse({"name": provider.name, "ok": error is None, "jwks_uri": keys.jwks_uri,
                         "kids": list(keys.kids), "error": error})


async def check_account(call: Call) -> Response:
    gw, doc = await _stored(call, "accounts", "check accounts")
    try:
        account = parse_item("accounts", doc, allowlist=gw.allowlist)
    except ConfigError as exc:
        return JSONResponse(_unusable(doc["name"], exc))
    report = await gw.credentials.check(account)
    return JSONResponse({"name": account.name, "ok": report["error"] is None, "auth": report["auth"],
                         "expires_on": report["expires_on"], "error": report["error"],
                         "field": report["field"]})
