"""Fixtures for the authentication tests: development identity providers on real loopback sockets,
injected clocks, and Authenticators that fetch keys over HTTP like production (plain http on loopback,
which these tests allow explicitly)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from shared.auth.authenticator import Authenticator
from shared.config.model import Config, ExternalIdentity, IdentityProvider

AUDIENCE = "api://ai-gateway"


class Clock:
    """Wall and monotonic time that move only when a test says so (they start at the real time, so
    tokens minted by the identity provider are current)."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._wall0 = time.time()
        self._mono0 = 10_000.0

    def wall(self) -> float:
        return self._wall0 + self.offset

    def mono(self) -> float:
        return self._mono0 + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture(scope="session")
def idp_loop() -> Iterator[BackgroundLoop]:
    """The identity providers run on their own thread, as a separate server would."""
    with BackgroundLoop() as loop:
        yield loop


@pytest.fixture(scope="session")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One RSA-2048 default key for every per-test provider (generating one per test is slow)."""
    path = tmp_path_factory.mktemp("idp") / "key.pem"
    key = rsa.generate_private_key(65537, 2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


@pytest.fixture
def start_idp(idp_loop: BackgroundLoop, key_file: Path) -> Iterator[Callable[..., DevIdentityProvider]]:
    started: list[DevIdentityProvider] = []

    def start(*, fresh_key: bool = False) -> DevIdentityProvider:
        idp = DevIdentityProvider(key_file=None if fresh_key else key_file)
        idp_loop.run(idp.start())
        started.append(idp)
        return idp

    yield start
    for idp in started:
        idp_loop.run(idp.stop())


@pytest.fixture
def dev_idp(start_idp: Callable[..., DevIdentityProvider]) -> DevIdentityProvider:
    return start_idp()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_auth(clock: Clock) -> AsyncIterator[Callable[..., Authenticator]]:
    made: list[Authenticator] = []

    def make(**options: Any) -> Authenticator:
        options.setdefault("allow_http_loopback", True)
        options.setdefault("wall_clock", clock.wall)
        options.setdefault("monotonic_clock", clock.mono)
        auth = Authenticator(**options)
        made.append(auth)
        return auth

    yield make
    for auth in made:
        await auth.aclose()


@pytest.fixture
def auth(make_auth: Callable[..., Authenticator]) -> Authenticator:
    return make_auth()


def provider(idp: DevIdentityProvider, name: str = "dev", **fields: Any) -> IdentityProvider:
    fields.setdefault("jwks_uri", idp.jwks_uri)
    fields.setdefault("issuer", idp.issuer)
    fields.setdefault("audiences", (AUDIENCE,))
    return IdentityProvider(name=name, **fields)


def config(*providers: IdentityProvider, identities: tuple[ExternalIdentity, ...] = ()) -> Config:
    return Config(identity_providers=providers, external_identities=identities)
