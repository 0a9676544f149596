"""TokenKeeper on its own, with a scripted source and a movable clock: the refresh rules exactly."""

from __future__ import annotations

import asyncio

import pytest

from shared.upstream.problem import CredentialProblem
from shared.upstream.tokens import RefreshPolicy, Token, TokenKeeper
from tests.upstream.helpers import Clock


class Script:
    """A token source that answers from a list: a lifetime in seconds, or a problem to raise."""

    def __init__(self, clock: Clock, *answers: float | CredentialProblem, delay: float = 0) -> None:
        self.clock, self.answers, self.delay = clock, list(answers), delay
        self.calls = 0
        self.closed = False

    async def fetch(self) -> Token:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = self.answers.pop(0)
        if isinstance(answer, CredentialProblem):
            raise answer
        now = self.clock()
        return Token(value=f"token-{self.calls}", expires_on=now + answer, obtained_at=now)

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("lifetime", "ahead"), [
    (3600, 360),        # 10 % of an hour is more than 5 minutes
    (1800, 300),        # 5 minutes is more than 10 % of half an hour
    (86400, 8640),      # a managed identity's day-long token
    (400, 200),         # never more than half the lifetime
])
def test_refresh_is_due_when_5_minutes_or_10_percent_remain(lifetime: float, ahead: float) -> None:
    token = Token("t", expires_on=1000 + lifetime, obtained_at=1000)
    assert RefreshPolicy().refresh_at(token) == pytest.approx(1000 + lifetime - ahead)


def test_the_issuers_refresh_hint_is_honoured_when_earlier() -> None:
    token = Token("t", expires_on=1000 + 86400, obtained_at=1000, refresh_on=1000 + 3600)
    assert RefreshPolicy().refresh_at(token) == 1000 + 3600


async def test_a_token_close_to_expiry_is_never_handed_out() -> None:
    clock = Clock()
    source = Script(clock, 3600, CredentialProblem("down", transient=True))
    keeper = TokenKeeper(source, policy=RefreshPolicy(failure_hold_seconds=0), clock=clock)
    assert await keeper.token() == "token-1"
    clock.advance(3600 - 29)                 # 29 s left, under min_remaining_seconds (30)
    with pytest.raises(CredentialProblem, match="down"):
        await keeper.token()
    assert keeper.held is not None and keeper.problem is not None


async def test_refresh_failure_then_recovery() -> None:
    clock = Clock()
    problem = CredentialProblem("Entra is down", transient=True)
    source = Script(clock, 3600, problem, 3600)
    keeper = TokenKeeper(source, policy=RefreshPolicy(retry_seconds=30), clock=clock)
    assert await keeper.token() == "token-1"
    clock.advance(3400)
    assert await keeper.token() == "token-1"     # starts a background refresh, which fails
    await asyncio.sleep(0.01)
    assert keeper.problem is problem and source.calls == 2
    assert await keeper.token() == "token-1"     # no retry within retry_seconds
    assert source.calls == 2
    clock.advance(31)
    assert await keeper.token() == "token-1"     # retried in the background, succeeds
    await asyncio.sleep(0.01)
    assert await keeper.token() == "token-3" and keeper.problem is None


async def test_fetch_timeout_is_a_problem() -> None:
    clock = Clock()
    keeper = TokenKeeper(Script(clock, 3600, delay=1), clock=clock,
                         policy=RefreshPolicy(fetch_timeout_seconds=0.05))
    with pytest.raises(CredentialProblem, match=r"no token within 0\.05 s"):
        await keeper.token()


async def test_close_lets_the_fetch_under_way_finish_then_closes_the_source() -> None:
    clock = Clock()
    source = Script(clock, 3600, delay=0.1)
    keeper = TokenKeeper(source, policy=RefreshPolicy(), clock=clock)
    waiting = asyncio.ensure_future(keeper.token())
    await asyncio.sleep(0.01)
    await keeper.aclose()
    assert await waiting == "token-1"
    assert source.closed
    with pytest.raises(CredentialProblem, match="replaced or closed"):
        await keeper.token()


def test_token_repr_hides_the_value() -> None:
    assert "secret-value" not in repr(Token("secret-value", expires_on=2, obtained_at=1))
