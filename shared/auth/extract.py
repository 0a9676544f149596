"""The bearer token of a request: `Authorization: Bearer <jwt>` or `api-key: <jwt>`, exactly one.

More than one token (two Authorization headers, Authorization and api-key, a header and
`?access_token=`) is refused rather than resolved by precedence: two components picking different
tokens is how confused-deputy bugs start. Tokens in the URL are refused too (they end up in logs).
Sizes are checked before anything else looks at the value.
"""

from __future__ import annotations

import re
from typing import Protocol

from ..errors import InvalidToken, MissingToken

MAX_HEADER_BYTES = 8192
# Registered schemes (IANA HTTP Authentication Scheme Registry) and common vendor ones. A refusal
# names the scheme only in our own spelling from this table: what comes before the space may be
# the credential itself (`Authorization: sk-...`), so no part of the header is ever echoed.
_KNOWN_SCHEMES = {s.lower(): s for s in (
    "Basic", "Digest", "Negotiate", "NTLM", "Token", "ApiKey", "Api-Key", "Key", "HOBA", "Mutual",
    "SCRAM-SHA-1", "SCRAM-SHA-256", "vapid", "AWS4-HMAC-SHA256", "DPoP", "GNAP", "Privatetoken",
    "Concealed", "SharedKey", "SharedAccessSignature", "MAC", "OAuth")}
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 b64token


class MultiMap(Protocol):
    """Starlette's Headers and QueryParams: several values per name."""

    def getlist(self, key: str) -> list[str]: ...


def extract_token(headers: MultiMap, query_params: MultiMap) -> str:
    authorization = headers.getlist("authorization")
    api_keys = headers.getlist("api-key")
    for name, values in (("Authorization", authorization), ("api-key", api_keys)):
        if any(len(v) > MAX_HEADER_BYTES for v in values):
            raise InvalidToken(f"{name} header is larger than {MAX_HEADER_BYTES // 1024} KB")
    in_query = query_params.getlist("access_token")
    if len(authorization) > 1:
        raise InvalidToken("more than one Authorization header")
    if len(api_keys) > 1:
        raise InvalidToken("more than one api-key header")
    if authorization and api_keys:
        raise InvalidToken("more than one token: both Authorization and api-key headers are present")
    if in_query:
        if authorization or api_keys:
            raise InvalidToken("more than one token: a header and the access_token query parameter")
        raise InvalidToken("tokens in the URL (access_token) are not accepted: send "
                           "'Authorization: Bearer <jwt>'")
    if authorization:
        return _bearer(authorization[0])
    if api_keys:
        token = api_keys[0].strip()
        if not token:
            raise InvalidToken("api-key header is empty")
        if not _B64TOKEN.fullmatch(token):
            raise InvalidToken("api-key header is not a token")
        return token
    raise MissingToken()


def _bearer(value: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidToken("Authorization header is empty")
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer":
        raise InvalidToken(_unsupported(scheme))
    token = credentials.strip()
    if not token:
        raise InvalidToken("Bearer with no token")
    if not _B64TOKEN.fullmatch(token):
        raise InvalidToken("malformed Bearer credentials")
    return token


def _unsupported(scheme: str) -> str:
    known = _KNOWN_SCHEMES.get(scheme.lower())
    if known is not None:
        return f"authorization scheme {known} is not supported: use 'Authorization: Bearer <jwt>'"
    return "the Authorization header is not 'Bearer <jwt>' (its content is not shown)"
