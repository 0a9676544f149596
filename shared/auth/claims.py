"""Claim checks that need no key: times (with leeway), audience, the unique id and the email.

PyJWT accepts a string or 1e300 `exp` and an empty `sub`; here times must be integers in range and
the unique id a non-empty string.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from .redact import show
from .trace import Refused

MAX_NUMERIC_DATE = 2**53  # beyond what every JSON implementation represents exactly
_MISSING = object()


def lookup(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by exact name, else by dotted path into nested objects (`realm_access.roles`).

    The exact name wins so that namespaced claims (`https://example.com/roles`) keep working.
    Returns `_MISSING` (see `found`) when absent.
    """
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def found(value: Any) -> bool:
    return value is not _MISSING


def _numeric_date(claims: Mapping[str, Any], name: str) -> int | None:
    if name not in claims:
        return None
    value = claims[name]
    if type(value) is not int:  # bool is an int subclass; floats, strings, null, lists are refused
        kind = "null" if value is None else type(value).__name__
        raise Refused("time", f"{name} claim must be an integer number of seconds, got {kind}")
    if not 0 <= value < MAX_NUMERIC_DATE:
        raise Refused("time", f"{name} claim is out of range")
    return value


def _when(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def check_times(claims: Mapping[str, Any], now: float, leeway: int) -> int:
    """`exp` is required; `nbf` and `iat` are checked when present. Returns `exp`."""
    exp = _numeric_date(claims, "exp")
    if exp is None:
        raise Refused("time", "token has no exp claim")
    nbf = _numeric_date(claims, "nbf")
    iat = _numeric_date(claims, "iat")
    if now >= exp + leeway:
        _late("time", f"token expired at {_when(exp)} ({int(now - exp)} s ago", leeway)
    if nbf is not None and nbf > now + leeway:
        _late("time", f"token is not valid before {_when(nbf)} ({int(nbf - now)} s from now", leeway)
    if iat is not None and iat > now + leeway:
        _late("time", f"token was issued in the future at {_when(iat)} ({int(iat - now)} s from now",
              leeway)
    return exp


def _late(check: str, what: str, leeway: int) -> NoReturn:
    """The allowed clock skew is a setting: for the log and explain, not for the caller."""
    raise Refused(check, f"{what}; allowed clock skew {leeway} s)", f"{what})")


def check_audience(claims: Mapping[str, Any], audiences: Sequence[str]) -> str | None:
    """With audiences configured, `aud` (a string or a list of strings) must contain one exactly.
    Without, `aud` is not checked (the provider accepts any audience by configuration)."""
    if not audiences:
        return None
    aud = claims.get("aud", _MISSING)
    if aud is _MISSING:
        raise Refused("audience", "token has no aud claim; expected one of " + _list(audiences),
                      "token has no aud claim")
    if isinstance(aud, str):
        values = [aud]
    elif isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        values = aud
    else:
        raise Refused("audience", "aud claim must be a string or a list of strings")
    for value in values:
        if value in audiences:
            return value
    got = show(aud) if isinstance(aud, str) else f"{len(values)} audiences"
    raise Refused("audience", f"audience mismatch: token aud is {got}, expected one of {_list(audiences)}",
                  "audience mismatch")


def _list(values: Sequence[str]) -> str:
    return ", ".join(show(v) for v in values)


def unique_id(claims: Mapping[str, Any], claim: str) -> str:
    value = lookup(claims, claim)
    if not found(value):
        raise Refused("unique_id", f"missing unique-id claim {show(claim)}", "missing unique-id claim")
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise Refused("unique_id", f"unique-id claim {show(claim)} must be a string, got {kind}",
                      f"the unique-id claim must be a string, got {kind}")
    if not value:
        raise Refused("unique_id", f"unique-id claim {show(claim)} is empty", "the unique-id claim is empty")
    return value


def email(claims: Mapping[str, Any], claim: str) -> str | None:
    value = lookup(claims, claim)
    return value if isinstance(value, str) and value else None
