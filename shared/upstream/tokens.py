"""Holds one account's access token: served from memory, refreshed ahead of expiry in the background.

The rules users of other gateways asked for: a token is refreshed while it is still good
(when less than `ahead_seconds` or `ahead_fraction` of its lifetime remains, at most half of it), by
one background fetch at a time while requests keep getting the current token; a failed refresh keeps
the still-valid token; an expired one (or one about to expire) is never handed out. Only a request
that finds no usable token waits, and it joins the fetch already under way. No lock is held across
network I/O: the single flight is a shared task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..telemetry import CREDENTIAL_REFRESHES
from .problem import CredentialProblem

log = logging.getLogger("gateway.upstream.tokens")


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_on: float             # epoch seconds
    obtained_at: float            # epoch seconds, by the keeper's clock
    refresh_on: float | None = None   # the issuer's own hint (refresh_in), when it sent one

    def __repr__(self) -> str:    # never show the token itself
        return f"Token(expires_on={self.expires_on}, obtained_at={self.obtained_at})"


class TokenSource(Protocol):
    """Fetches a new token from its issuer, every time it is asked; raises CredentialProblem."""

    async def fetch(self) -> Token: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    ahead_seconds: float = 300          # refresh when less than this remains...
    ahead_fraction: float = 0.1         # ...or less than this share of the token's lifetime
    min_remaining_seconds: float = 30   # a token closer than this to expiry counts as expired
    retry_seconds: float = 30           # after a failed background refresh, wait before the next one
    failure_hold_seconds: float = 5     # with no usable token, a failure this recent is answered at once
    fetch_timeout_seconds: float = 60   # the longest one fetch may take

    def refresh_at(self, token: Token) -> float:
        lifetime = max(0.0, token.expires_on - token.obtained_at)
        ahead = min(max(self.ahead_seconds, self.ahead_fraction * lifetime), lifetime / 2)
        due = token.expires_on - ahead
        return min(due, token.refresh_on) if token.refresh_on else due


class TokenKeeper:
    def __init__(self, source: TokenSource, *, policy: RefreshPolicy,
                 clock: Callable[[], float] = time.time, account: str = "") -> None:
        self._source = source
        self._account = account
        self._policy = policy
        self._clock = clock
        self._token: Token | None = None
        self._inflight: asyncio.Task[Token] | None = None
        self._next_try = 0.0
        self.refreshed_at: float | None = None
        self.attempted_at: float | None = None
        self.failed_at: float | None = None
        self.problem: CredentialProblem | None = None
        self._closed = False

    def _usable(self, token: Token | None, now: float) -> bool:
        return token is not None and now < token.expires_on - self._policy.min_remaining_seconds

    async def token(self) -> str:
        """A token good for one upstream request, or CredentialProblem."""
        now = self._clock()
        held = self._token
        if held is not None and self._usable(held, now):
            if now >= self._policy.refresh_at(held) and now >= self._next_try:
                self._start()
            return held.value
        if (self._inflight is None and self.problem is not None and self.failed_at is not None
                and now - self.failed_at < self._policy.failure_hold_seconds):
            raise self.problem
        token = await self._join()
        if not self._usable(token, self._clock()):
            raise CredentialProblem("the issuer returned a token that is already (nearly) expired: check "
                                    "this machine's clock")
        return token.value

    async def refresh(self) -> Token:
        """Fetch now (or join the fetch under way), whatever the held token's age: the canary's check."""
        return await self._join()

    @property
    def held(self) -> Token | None:
        return self._token

    def _start(self) -> asyncio.Task[Token]:
        # A finished fetch whose done-callback has not run yet is not in flight: awaiting a finished task
        # does not yield to the loop, so a caller could otherwise meet its stale outcome again.
        if self._inflight is None or self._inflight.done():
            task = asyncio.get_running_loop().create_task(self._fetch())
            task.add_done_callback(self._finished)
            self._inflight = task
        return self._inflight

    def _finished(self, task: asyncio.Task[Token]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()   # retrieved here; whoever awaits it sees it too

    async def _join(self) -> Token:
        if self._closed:
            raise CredentialProblem("the account's credential was replaced or closed")
        # shield: a caller that goes away does not cancel the fetch other callers are waiting on
        return await asyncio.shield(self._start())

    async def _fetch(self) -> Token:
        self.attempted_at = self._clock()
        try:
            async with asyncio.timeout(self._policy.fetch_timeout_seconds):
                token = await self._source.fetch()
        except CredentialProblem as problem:
            self._failed(problem)
            raise
        except TimeoutError:
            problem = CredentialProblem(f"no token within {self._policy.fetch_timeout_seconds:g} s",
                                        transient=True)
            self._failed(problem)
            raise problem from None
        except Exception as exc:   # a bug or an unforeseen failure: still a 503 with words, never a 500
            log.exception("token fetch failed unexpectedly")
            problem = CredentialProblem(f"token request failed unexpectedly ({type(exc).__name__})")
            self._failed(problem)
            raise problem from None
        self._token = token
        CREDENTIAL_REFRESHES.add(1, {"gateway.account": self._account, "gateway.outcome": "ok"})
        self.refreshed_at = token.obtained_at
        self.problem = None
        self.failed_at = None
        self._next_try = 0.0
        return token

    def _failed(self, problem: CredentialProblem) -> None:
        CREDENTIAL_REFRESHES.add(1, {"gateway.account": self._account, "gateway.outcome": "failed"})
        now = self._clock()
        self.problem = problem
        self.failed_at = now
        self._next_try = now + self._policy.retry_seconds
        still = self._usable(self._token, now)
        log.warning("token refresh failed%s: %s", " (the current token is still used)" if still else "",
                    problem.message)

    async def aclose(self, grace_seconds: float = 10) -> None:
        """Let a fetch under way finish (requests may be waiting on it), then close the source."""
        self._closed = True
        task = self._inflight
        if task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), grace_seconds)
            if not task.done():
                task.cancel()
        self._token = None
        await self._source.aclose()
