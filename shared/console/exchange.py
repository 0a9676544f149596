"""The console's code exchange: a browser's request checked field by field, then the authorization code
redeemed at the provider's token endpoint with the PKCE verifier, and only a bearer token handed back.

The redirect URI must be a console page on the very origin the browser is on, so the gateway cannot be
used to redeem codes issued for other applications. The provider's answer is read for one token (the
access token when it is a JWT, else the ID token); a refresh token is dropped, and the provider's
`error_description` is never passed on or logged (it may quote the request): its `error` code is put
into words instead. Codes, verifiers and tokens are never logged.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .. import strict_json
from ..auth.fetch import FetchError, HttpFetcher
from ..config.schema import NAME_RE
from ..errors import InvalidRequest, PermissionDenied, UpstreamError

log = logging.getLogger("gateway.console.exchange")

FIELDS = ("provider", "code", "code_verifier", "redirect_uri")
CODE_RE = re.compile(r"^[\x21-\x7e]{1,4096}$")            # RFC 6749: VSCHAR, spaces left out
VERIFIER_RE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")    # RFC 7636 section 4.1
URI_RE = re.compile(r"^[\x21-\x7e]{1,2048}$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
DEFAULT_PORTS = {"http": 80, "https": 443}
# The provider's `error` codes (RFC 6749 section 5.2) in words, and whether the sign-in (rather than
# the gateway's configuration or the provider) is at fault.
REFUSALS: dict[str, tuple[str, bool]] = {
    "invalid_grant": ("the code is expired, already used, or was issued for another redirect URI or "
                      "verifier: sign in again", True),
    "invalid_request": ("the provider found the code exchange malformed: sign in again", True),
    "invalid_scope": ("the provider refused the scopes (console_scopes)", False),
    "invalid_client": ("the provider does not accept console_client_id as a public client: register a "
                       "single-page application with the console's URL as a redirect URI", False),
    "unauthorized_client": ("the client named by console_client_id may not use the authorization code "
                            "flow", False),
    "unsupported_grant_type": ("the provider does not support the authorization code flow for this "
                               "client", False),
    "server_error": ("the provider failed", False),
    "temporarily_unavailable": ("the provider is temporarily unavailable", False),
}


@dataclass(frozen=True, slots=True)
class TokenRequest:
    provider: str
    code: str
    code_verifier: str
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str
    expires_in: int | None
    token_type: str = "Bearer"


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` in canonical form (default port left out), or None if `url` has none."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    shown_port = f":{port}" if port not in (None, DEFAULT_PORTS[parts.scheme]) else ""
    return f"{parts.scheme}://{host}{shown_port}"


def check_origin(origin: str | None, host: str | None, fetch_site: str | None) -> str:
    """The browser's origin, when the request comes from a page on the gateway's own origin: a browser's
    `Sec-Fetch-Site` says so even behind a proxy that rewrites Host; without it Origin must name Host."""
    own = origin_of(origin) if origin and URI_RE.match(origin) else None
    if own is None or own != origin.rstrip("/"):
        raise PermissionDenied("the code exchange is for the console's own page: the Origin header is "
                               "missing or not an origin")
    if fetch_site is not None:
        same = fetch_site == "same-origin"
    else:
        scheme = own.split(":", 1)[0]
        same = host is not None and origin_of(f"{scheme}://{host}") == own
    if not same:
        raise PermissionDenied("the code exchange is for the console's own page, not another origin's")
    return own


def _field(body: dict[str, Any], name: str, pattern: re.Pattern[str], rule: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidRequest(f"{name} must be {rule}", param=name)
    return value


def read_request(body: dict[str, Any], origin: str) -> TokenRequest:
    """The request's fields, each checked; the redirect URI must be the console on `origin`."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise InvalidRequest(f"unknown field {unknown[0][:40]!r}: the fields are {', '.join(FIELDS)}")
    request = TokenRequest(
        provider=_field(body, "provider", NAME_RE, "an identity provider's name"),
        code=_field(body, "code", CODE_RE, "the code from the provider (printable ASCII, at most 4096)"),
        code_verifier=_field(body, "code_verifier", VERIFIER_RE,
                             "43 to 128 letters, digits and - . _ ~ (RFC 7636)"),
        redirect_uri=_field(body, "redirect_uri", URI_RE, "an absolute URL of at most 2048 characters"))
    parts = urlsplit(request.redirect_uri)
    if origin_of(request.redirect_uri) != origin or parts.query or parts.fragment \
            or not parts.path.endswith("/console/"):
        raise InvalidRequest("redirect_uri must be the console's own page (…/console/) on the origin of "
                             "this request, without a query or fragment", param="redirect_uri")
    return request


def _is_jwt(value: Any) -> bool:
    if not isinstance(value, str) or value.count(".") != 2 or len(value) > 16384:
        return False
    head = value.split(".", 1)[0]
    if not _B64URL.match(head):
        return False
    try:
        header = strict_json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and isinstance(header.get("alg"), str) and header["alg"] != "none"


def _answer(raw: bytes) -> dict[str, Any]:
    try:
        doc = strict_json.loads(raw)
    except strict_json.StrictJSONError:
        doc = None
    return doc if isinstance(doc, dict) else {}


def _refused(provider: str, status: int, doc: dict[str, Any]) -> InvalidRequest | UpstreamError:
    code = doc.get("error")
    words, sign_in_at_fault = REFUSALS.get(code, ("", False)) if isinstance(code, str) else ("", False)
    log.warning("console sign-in with %s: the token endpoint refused the code (HTTP %d, error %s)",
                provider, status, code if words else "unrecognised")
    if not words:
        return UpstreamError(f"the identity provider {provider} refused the code exchange (HTTP {status})")
    message = f"the identity provider {provider} refused the sign-in: {words} ({code})"
    return InvalidRequest(message) if sign_in_at_fault else UpstreamError(message)


async def redeem(fetcher: HttpFetcher, token_endpoint: str, client_id: str, request: TokenRequest, *,
                 allow_private_network: bool) -> SignedIn:
    form = {"grant_type": "authorization_code", "code": request.code, "redirect_uri": request.redirect_uri,
            "client_id": client_id, "code_verifier": request.code_verifier}
    try:
        status, raw = await fetcher.post_form(token_endpoint, form,
                                              allow_private_network=allow_private_network)
    except FetchError as exc:
        log.warning("console sign-in with %s: the token endpoint failed: %s", request.provider, exc)
        raise UpstreamError(f"the identity provider {request.provider}'s token endpoint failed: {exc}") \
            from None
    doc = _answer(raw)
    if status != 200:
        raise _refused(request.provider, status, doc)
    token = next((doc[k] for k in ("access_token", "id_token") if _is_jwt(doc.get(k))), None)
    if token is None:
        log.warning("console sign-in with %s: the answer holds no JWT", request.provider)
        raise UpstreamError(f"the identity provider {request.provider} answered no token the gateway can "
                            "read (neither the access token nor the ID token is a JWT)")
    expires_in = doc.get("expires_in")
    log.info("console sign-in with %s: code redeemed", request.provider)
    return SignedIn(token, expires_in if isinstance(expires_in, int) and not isinstance(expires_in, bool)
                    and expires_in > 0 else None)
