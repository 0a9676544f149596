"""The fetch rules for admin-supplied JWKS and discovery URLs: https only (http only to loopback in
development), the connected address checked after DNS, no redirects. No traffic leaves loopback: names
resolve through a test resolver, and refused addresses are refused before a socket is created."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from sandbox.idp import DevIdentityProvider
from shared.auth.addresses import AddressPolicy
from shared.auth.authenticator import Authenticator
from shared.auth.fetch import FetchError, HttpFetcher
from shared.errors import InvalidToken
from tests.auth.conftest import AUDIENCE, config, provider


class MapResolver(AbstractResolver):
    """Resolves test names to chosen addresses, the way a hostile or rebinding DNS would."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.names:
            raise OSError(f"unknown test host {host}")
        return [ResolveResult(hostname=host, host=address, port=port,
                              family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST) for address in self.names[host]]

    async def close(self) -> None:
        pass


class Listener:
    """A TCP listener on loopback that counts connections (and never answers)."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def __aenter__(self) -> Listener:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
async def fetchers() -> AsyncIterator[Callable[..., HttpFetcher]]:
    made: list[HttpFetcher] = []

    def make(**options: Any) -> HttpFetcher:
        fetcher = HttpFetcher(**options)
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.aclose()


async def test_plain_http_is_refused_without_the_development_setting(
        dev_idp: DevIdentityProvider, make_auth: Callable[..., Authenticator]) -> None:
    auth = make_auth(allow_http_loopback=False)
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(dev_idp.mint("alice", audience=AUDIENCE), config(provider(dev_idp)))
    assert "plain http is refused: use https (GATEWAY_DEV_ALLOW_HTTP_LOOPBACK=true" in info.value.reason
    assert dev_idp.fetch_count == 0


@pytest.mark.parametrize(("url", "error"), [
    ("file:///etc/passwd", "file URLs are refused"),
    ("ftp://example.com/keys", "ftp URLs are refused"),
    ("gopher://127.0.0.1:70/", "gopher URLs are refused"),
    ("/keys", "relative URLs are refused"),
    ("https://user:pw@example.com/keys", "URLs with credentials are refused"),
    ("https:///keys", "the URL has no host"),
    ("https://example.com:99999/keys", "the URL is malformed"),
])
async def test_urls_refused_before_any_connection(url: str, error: str,
                                                  fetchers: Callable[..., HttpFetcher]) -> None:
    with pytest.raises(FetchError, match=error):
        await fetchers(allow_http_loopback=True).get(url, allow_private_network=True)


async def test_loopback_refused_at_connect_time_when_the_rule_says_so(
        fetchers: Callable[..., HttpFetcher]) -> None:
    async with Listener() as listener:
        resolver = MapResolver({"jwks.test": ["127.0.0.1"]})
        fetcher = fetchers(resolver=resolver)
        for url in (f"https://jwks.test:{listener.port}/keys", f"https://127.0.0.1:{listener.port}/keys",
                    f"https://[::ffff:127.0.0.1]:{listener.port}/keys"):
            with pytest.raises(FetchError, match=r"refused by the address policy: .*127\.0\.0\.1 is a "
                                                 r"loopback address \(allowed only with "
                                                 r"GATEWAY_DEV_ALLOW_HTTP_LOOPBACK=true\)"):
                await fetcher.get(url, allow_private_network=True)   # opting in to private is not enough
        assert resolver.asked == ["jwks.test"]                      # the name was resolved, then refused
        assert listener.connections == 0


@pytest.mark.parametrize(("address", "error"), [
    ("169.254.169.254", "cloud metadata or platform address"),
    ("168.63.129.16", "cloud metadata or platform address"),
    ("169.254.10.1", "link-local"),
    ("10.1.2.3", "private address (allowed only for a provider with allow_private_network: true)"),
    ("172.16.5.4", "private address"),
    ("192.168.1.1", "private address"),
    ("0.0.0.0", "unspecified address"),
    ("fe80::1", "link-local"),
    ("fd00:ec2::254", "cloud metadata"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("64:ff9b::a9fe:a9fe", "embeds 169.254.169.254"),
    ("224.0.0.1", "multicast"),
    ("192.0.2.10", "not a public address"),
])
async def test_hosts_resolving_to_forbidden_addresses_are_refused(
        address: str, error: str, fetchers: Callable[..., HttpFetcher]) -> None:
    fetcher = fetchers(resolver=MapResolver({"jwks.test": [address]}))
    with pytest.raises(FetchError, match="refused by the address policy") as info:
        await fetcher.get("https://jwks.test/keys", allow_private_network=False)
    assert error in str(info.value)


def test_private_ranges_only_when_the_provider_opts_in() -> None:
    assert AddressPolicy(allow_private=True).refusal("10.1.2.3") is None
    assert AddressPolicy(allow_private=True).refusal("fd12::1") is None
    assert AddressPolicy(allow_private=False).refusal("10.1.2.3") is not None
    for forbidden in ("169.254.169.254", "127.0.0.1", "0.0.0.0", "168.63.129.16"):
        assert AddressPolicy(allow_private=True).refusal(forbidden) is not None
    assert AddressPolicy().refusal("20.190.160.1") is None      # a public address


async def test_every_resolved_address_is_checked(dev_idp: DevIdentityProvider,
                                                 fetchers: Callable[..., HttpFetcher]) -> None:
    """A name with a metadata address and a loopback one (development): only loopback is used."""
    port = dev_idp.port
    fetcher = fetchers(allow_http_loopback=True,
                       resolver=MapResolver({"jwks.test": ["169.254.169.254", "127.0.0.1"]}))
    body = await fetcher.get(f"http://jwks.test:{port}/keys", allow_private_network=False)
    assert b'"keys"' in body
    all_bad = fetchers(allow_http_loopback=True,
                       resolver=MapResolver({"jwks.test": ["169.254.169.254", "10.0.0.1"]}))
    with pytest.raises(FetchError, match="refused by the address policy") as info:
        await all_bad.get(f"https://jwks.test:{port}/keys", allow_private_network=False)
    assert "10.0.0.1 is a private address" in str(info.value)   # aiohttp reports the last address tried


async def test_http_goes_to_loopback_only(fetchers: Callable[..., HttpFetcher]) -> None:
    fetcher = fetchers(allow_http_loopback=True, resolver=MapResolver({"jwks.test": ["20.190.160.1"]}))
    with pytest.raises(FetchError, match=r"is not a loopback address \(plain http is allowed on loopback"):
        await fetcher.get("http://jwks.test/keys", allow_private_network=True)


async def test_redirects_are_not_followed(dev_idp: DevIdentityProvider,
                                          fetchers: Callable[..., HttpFetcher]) -> None:
    dev_idp.fault = "redirect"
    with pytest.raises(FetchError, match=r"redirect \(HTTP 302\) refused"):
        await fetchers(allow_http_loopback=True).get(dev_idp.jwks_uri, allow_private_network=False)
    assert dev_idp.redirect_target_hits == 0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def _tls_jwks(idp: DevIdentityProvider, ca: trustme.CA,
                    extra: dict[str, str] | None = None) -> tuple[web.AppRunner, int]:
    async def keys(request: web.Request) -> web.Response:
        return web.json_response(idp.jwks(), headers=extra)

    app = web.Application()
    app.router.add_get("/keys", keys)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("jwks.test").configure_cert(server_ctx)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def test_https_with_a_trusted_certificate(dev_idp: DevIdentityProvider, ca: trustme.CA,
                                                fetchers: Callable[..., HttpFetcher],
                                                make_auth: Callable[..., Authenticator]) -> None:
    runner, port = await _tls_jwks(dev_idp, ca)
    try:
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        resolver = MapResolver({"jwks.test": ["127.0.0.1"]})
        fetcher = fetchers(allow_http_loopback=True, resolver=resolver, ssl_context=client_ctx)
        auth = make_auth(fetcher=fetcher)
        cfg = config(provider(dev_idp, jwks_uri=f"https://jwks.test:{port}/keys"))
        assert (await auth.authenticate(dev_idp.mint("alice", audience=AUDIENCE), cfg)).unique_id == "alice"

        untrusting = fetchers(allow_http_loopback=True, resolver=resolver)   # system CAs only
        with pytest.raises(FetchError, match=r"cannot connect: .*certificate"):
            await untrusting.get(f"https://jwks.test:{port}/keys", allow_private_network=False)
    finally:
        await runner.cleanup()


async def test_compressed_answers_are_refused(dev_idp: DevIdentityProvider, ca: trustme.CA,
                                              fetchers: Callable[..., HttpFetcher]) -> None:
    runner, port = await _tls_jwks(dev_idp, ca, extra={"Content-Encoding": "gzip"})
    try:
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        fetcher = fetchers(allow_http_loopback=True, resolver=MapResolver({"jwks.test": ["127.0.0.1"]}),
                           ssl_context=client_ctx)
        with pytest.raises(FetchError, match=r"compressed answer \(gzip\) refused"):
            await fetcher.get(f"https://jwks.test:{port}/keys", allow_private_network=False)
    finally:
        await runner.cleanup()
