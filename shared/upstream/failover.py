"""Which upstream answers count as a target failing, and what the caller sees when every target failed.

A target fails on connect error, timeout, 429, 5xx, 401/403 (the gateway's own credential was refused)
and 3xx: a redirect is a misconfigured or hostile upstream, never followed (it could point anywhere,
and the request carries the gateway's credential) nor relayed (its `Location` would leak upstream
detail). A failure moves on to the next target, as long as no byte has reached the caller. The gateway
does not sleep on a Retry-After itself: it answers at once and the caller (the openai SDK does) waits.
Messages name accounts (chosen by the operator), never deployments or endpoints.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping

from ..config.model import Account
from ..errors import GatewayError, RateLimited, Unavailable, UpstreamError, UpstreamTimeout

RETRY_AFTER_CAP = 60
"""Longest Retry-After (seconds) passed on to a caller."""


def refusal(account: Account, status: int, headers: Mapping[str, str]) -> GatewayError | None:
    """The failure an upstream status means, or None when the answer is the caller's to have."""
    if status < 300:
        return None
    if status < 400:
        return UpstreamError(f"account {account.name} answered with a redirect (HTTP {status}), which "
                             "the gateway does not follow")
    if status == 429:
        return RateLimited(f"account {account.name} is rate limited",
                           retry_after_seconds(headers.get("Retry-After")))
    if status in (401, 403):
        return UpstreamError(f"account {account.name} refused the gateway's credential "
                             f"(HTTP {status}): check the account's auth settings and role assignments")
    if status >= 500:
        return UpstreamError(f"account {account.name} failed (HTTP {status})")
    return None


def combined_failure(model: str, failures: list[GatewayError]) -> GatewayError:
    """What the caller sees when every target failed: 429 if all were rate limited (the soonest
    Retry-After), 504 if all timed out, one failure's own kind if all were alike, else 502."""
    if not failures:
        return UpstreamError(f"model {model} has no targets")
    if len(failures) == 1:
        return failures[0]
    message = f"every target of model {model} failed: " + "; ".join(f.message for f in failures)
    kinds = {type(f) for f in failures}
    if kinds == {RateLimited}:
        waits = [int(f.headers["Retry-After"]) for f in failures if "Retry-After" in f.headers]
        return RateLimited(message, min(waits) if waits else None)
    kind = kinds.pop() if len(kinds) == 1 else UpstreamError
    return kind(message) if kind in (UpstreamTimeout, Unavailable) else UpstreamError(message)


def retry_after_seconds(value: str | None, now: float | None = None) -> int:
    """A Retry-After (delta seconds or HTTP date) as whole seconds in 1..RETRY_AFTER_CAP."""
    seconds: float = 1
    if value:
        value = value.strip()
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                seconds = when.timestamp() - (time.time() if now is None else now)
            except (TypeError, ValueError, IndexError, OverflowError):
                seconds = 1
    if not math.isfinite(seconds):
        seconds = RETRY_AFTER_CAP
    return int(min(RETRY_AFTER_CAP, max(1, math.ceil(seconds))))
