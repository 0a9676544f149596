"""Caching, refresh ahead of expiry, single flight, outages, the canary and the status report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from sandbox.entra import FakeEntra
from shared.errors import Unavailable
from shared.upstream.credentials import Credentials
from shared.upstream.problem import CredentialProblem
from shared.upstream.tokens import RefreshPolicy, Token, TokenKeeper
from tests.upstream.helpers import CLIENT, TENANT, Clock, account

SECRET = "s3cr3t-value"


@pytest.fixture
def app(entra: FakeEntra, monkeypatch: pytest.MonkeyPatch) -> FakeEntra:
    entra.add_app(TENANT, CLIENT, secrets=[SECRET])
    monkeypatch.setenv("GATEWAY_SECRET_AOAI", SECRET)
    return entra


def secret_account(entra: FakeEntra, name: str = "aoai", **extra: str):
    return account({"type": "client-secret", "tenant_id": TENANT, "client_id": CLIENT,
                    "secret_env": "GATEWAY_SECRET_AOAI", "authority_host": entra.url, **extra}, name=name)


def issued(entra: FakeEntra) -> int:
    return sum(1 for r in entra.requests if r.get("outcome") == "issued")


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def bearer(credentials: Credentials, acct) -> str:
    return (await credentials.for_account(acct).auth_headers())["Authorization"]


async def test_token_is_cached(app: FakeEntra, make_credentials: Callable[..., Credentials]) -> None:
    credentials = make_credentials()
    acct = secret_account(app)
    first = await bearer(credentials, acct)
    assert await bearer(credentials, acct) == first
    assert len(app.requests) == 1


async def test_concurrent_first_requests_share_one_fetch(
        app: FakeEntra, make_credentials: Callable[..., Credentials]) -> None:
    app.delay = 0.2
    credentials = make_credentials()
    acct = secret_account(app)
    tokens = await asyncio.gather(*(bearer(credentials, acct) for _ in range(20)))
    assert len(set(tokens)) == 1
    assert len(app.requests) == 1


async def test_a_caller_that_goes_away_does_not_cancel_the_shared_fetch(
        app: FakeEntra, make_credentials: Callable[..., Credentials]) -> None:
    app.delay = 0.3
    credentials = make_credentials()
    acct = secret_account(app)
    impatient = asyncio.ensure_future(bearer(credentials, acct))
    await asyncio.sleep(0.1)
    impatient.cancel()
    assert (await bearer(credentials, acct)).startswith("Bearer ")
    assert len(app.requests) == 1


async def test_refresh_ahead_serves_the_current_token_meanwhile(
        app: FakeEntra, make_credentials: Callable[..., Credentials]) -> None:
    clock = Clock()
    credentials = make_credentials(clock=clock)
    acct = secret_account(app)
    first = await bearer(credentials, acct)
    clock.advance(3000)                      # 600 s left of 3600: not yet due (due at 10 %, 360 s)
    assert await bearer(credentials, acct) == first and len(app.requests) == 1
    clock.advance(300)                       # 300 s left: due
    refreshed = credentials.status()["aoai"]["refreshed_at"]
    app.delay = 0.5
    started = time.monotonic()
    results = await asyncio.gather(*(bearer(credentials, acct) for _ in range(10)))
    assert time.monotonic() - started < 0.3, "requests must not wait for the refresh"
    assert set(results) == {first}
    await until(lambda: credentials.status()["aoai"]["refreshed_at"] != refreshed)
    second = await bearer(credentials, acct)
    assert second != first
    assert len(app.requests) == 2            # one background fetch for the ten requests


async def test_failed_refresh_keeps_a_valid_token_and_never_uses_an_expired_one(
        app: FakeEntra, make_credentials: Callable[..., Credentials]) -> None:
    clock = Clock()
    credentials = make_credentials(clock=clock, policy=RefreshPolicy(retry_seconds=30,
                                                                     failure_hold_seconds=0))
    acct = secret_account(app)
    first = await bearer(credentials, acct)
    expires_on = credentials.status()["aoai"]["expires_on"]
    app.outage = 503
    clock.advance(3400)                      # 200 s left: a refresh is due, and fails
    assert await bearer(credentials, acct) == first
    await until(lambda: credentials.status()["aoai"]["error"] is not None)
    status = credentials.status()["aoai"]
    assert "is unavailable" in str(status["error"]) and status["expires_on"] == expires_on
    # within retry_seconds no new attempt; the valid token keeps being served
    assert await bearer(credentials, acct) == first
    assert len(app.requests) == 2
    clock.advance(40)                        # past retry_seconds: one more background attempt
    assert await bearer(credentials, acct) == first
    await until(lambda: len(app.requests) == 3)
    clock.advance(200)                       # now within 30 s of expiry: the token is not used
    with pytest.raises(Unavailable) as caught:
        await bearer(credentials, acct)
    assert caught.value.message.startswith(f"account aoai: Entra at {app.url} is unavailable")
    app.outage = None                        # Entra is back: the next request gets a new token
    assert await bearer(credentials, acct) != first


async def test_entra_unreachable(app: FakeEntra, make_credentials: Callable[..., Credentials]) -> None:
    credentials = make_credentials()
    acct = secret_account(app)
    await app.stop()
    with pytest.raises(Unavailable) as caught:
        await bearer(credentials, acct)
    assert f"cannot reach Entra at {app.url}" in caught.value.message
    assert "auth.authority_host" in caught.value.message


async def test_untrusted_entra_certificate(app: FakeEntra,
                                           make_credentials: Callable[..., Credentials]) -> None:
    from shared.upstream.azure_sdk import AzureHttp

    credentials = make_credentials(http=AzureHttp(retry_total=0))   # the system CA store only
    with pytest.raises(Unavailable) as caught:
        await bearer(credentials, secret_account(app))
    assert "TLS certificate of Entra" in caught.value.message and "SSL_CERT_FILE" in caught.value.message


async def test_recent_failure_is_answered_without_asking_again(
        app: FakeEntra, make_credentials: Callable[..., Credentials]) -> None:
    credentials = make_credentials(policy=RefreshPolicy(failure_hold_seconds=30))
    app.outage = 503
    acct = secret_account(app)
    for _ in range(3):
        with pytest.raises(Unavailable):
            await bearer(credentials, acct)
    assert len(app.requests) == 1


async def test_configuration_change_rebuilds_the_credential(
        app: FakeEntra, make_credentials: Callable[..., Credentials]) -> None:
    credentials = make_credentials()
    before = secret_account(app)
    old = credentials.for_account(before)
    first = await bearer(credentials, before)
    assert credentials.for_account(secret_account(app)) is old       # equal configuration: kept
    after = secret_account(app, scope="https://ai.azure.com/.default")
    new = credentials.for_account(after)
    assert new is not old
    second = await bearer(credentials, after)
    assert second != first
    assert [r["scope"] for r in app.requests] == ["https://cognitiveservices.azure.com/.default",
                                                  "https://ai.azure.com/.default"]
    assert credentials.status()["aoai"]["scope"] == "https://ai.azure.com/.default"
    await asyncio.sleep(0)                   # the replaced credential is closed in the background
    with pytest.raises(Unavailable, match="replaced or closed"):
        await old.auth_headers()


async def test_canary_and_status(app: FakeEntra, monkeypatch: pytest.MonkeyPatch,
                                 make_credentials: Callable[..., Credentials]) -> None:
    monkeypatch.setenv("GATEWAY_SECRET_WRONG", "nope")
    clock = Clock()
    credentials = make_credentials(clock=clock)
    good = secret_account(app, name="good")
    bad = account({"type": "client-secret", "tenant_id": TENANT, "client_id": CLIENT,
                   "secret_env": "GATEWAY_SECRET_WRONG", "authority_host": app.url}, name="bad")
    keyless = account({"type": "api-key", "key_env": "GATEWAY_SECRET_UNSET_KEY"}, name="keyless")
    errors = await credentials.refresh_all([good, bad, keyless])
    assert errors["good"] is None
    assert str(errors["bad"]).startswith("Entra refused the client secret (AADSTS7000215)")
    assert "GATEWAY_SECRET_UNSET_KEY" in str(errors["keyless"])
    status = credentials.status()
    assert set(status) == {"good", "bad", "keyless"}
    assert status["good"]["error"] is None and status["good"]["refreshed_at"] == pytest.approx(clock(), abs=5)
    assert isinstance(status["good"]["expires_on"], int) and status["good"]["expires_on"] > time.time() + 3000
    assert status["bad"]["field"] == "secret_env" and status["bad"]["expires_on"] is None
    assert status["keyless"]["field"] == "key_env"
    for entry in status.values():          # no token anywhere in the report
        assert not any(isinstance(v, str) and v.count(".") == 2 and len(v) > 100 for v in entry.values())

    # the canary asks for a new token even while the held one is good; requests keep the cache
    before = issued(app)
    assert (await credentials.refresh_all([good]))["good"] is None
    assert issued(app) == before + 1
    assert set(credentials.status()) == {"good"}             # accounts no longer configured are dropped


async def test_an_unknown_auth_type_is_a_503_not_a_crash(
        make_credentials: Callable[..., Credentials]) -> None:
    from shared.config.model import Account, AccountAuth

    acct = Account(name="odd", kind="azure-openai", endpoint="https://x.openai.azure.com",
                   auth=AccountAuth(type="telepathy"))
    credentials = make_credentials()
    with pytest.raises(Unavailable, match="auth type 'telepathy' is not supported"):
        await credentials.for_account(acct).auth_headers()
    assert (await credentials.refresh_all([acct]))["odd"] is not None


async def test_status_of_the_configured_accounts(app: FakeEntra,
                                                 make_credentials: Callable[..., Credentials]) -> None:
    credentials = make_credentials()
    used, unused = secret_account(app, name="used"), secret_account(app, name="unused")
    await bearer(credentials, used)
    status = credentials.status([used, unused])
    assert set(status) == {"used", "unused"}
    assert status["unused"]["expires_on"] is None and status["unused"]["error"] is None
    assert status["used"]["expires_on"] is not None
    assert len(app.requests) == 1                        # reporting asks nothing of Entra


def test_building_credentials_imports_no_azure_identity() -> None:
    import subprocess
    import sys

    code = """
import sys
from shared.upstream.credentials import Credentials
from tests.upstream.helpers import account
c = Credentials()
for auth in ({"type": "workload-identity", "tenant_id": "t", "client_id": "c",
              "assertion": {"source": "kubernetes", "namespace": "n", "service_account": "s"}},
             {"type": "managed-identity"}, {"type": "client-secret", "tenant_id": "t", "client_id": "c",
              "secret_env": "GATEWAY_SECRET_X"}, {"type": "certificate", "tenant_id": "t", "client_id": "c",
              "certificate_path": "/nope"}, {"type": "api-key", "key_env": "GATEWAY_SECRET_K"}):
    c.for_account(account(auth, name=auth["type"]))
print(sorted(m for m in sys.modules if m.startswith(("azure.identity", "msal"))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


class _Flaky:
    """A token source that fails once, then issues: it answers at once, as a cached or local source does."""

    def __init__(self) -> None:
        self.calls = 0

    async def fetch(self) -> Token:
        self.calls += 1
        if self.calls == 1:
            raise CredentialProblem("Entra is unavailable", transient=True)
        return Token(value=f"token-{self.calls}", expires_on=time.time() + 3600, obtained_at=time.time())

    async def aclose(self) -> None:
        pass


async def test_a_fetch_that_just_finished_is_not_joined_again() -> None:
    """A request arriving between a failed fetch's end and its clean-up starts a new fetch instead of
    meeting the stale failure (awaiting a finished task does not yield, so the clean-up had not run)."""
    source = _Flaky()
    keeper = TokenKeeper(source, policy=RefreshPolicy(failure_hold_seconds=0))
    keeper._start()
    await asyncio.sleep(0)          # the fetch runs and fails; its done-callback is queued behind us
    assert source.calls == 1
    assert await keeper.token() == "token-2"
