"""Token verification on one core, in process: the gateway's own `Authenticator`, cached and uncached.

`python -m bench.auth [--tokens N] [--cached N]` prints one JSON object. Run it pinned to one core
(`taskset -c 1`), as `make bench` does. The dev identity provider runs in the same event loop; its
`fetch_count` shows whether verifying warm tokens fetched keys (it must not).

Figures: CPU time (process_time) and wall time per call for
  uncached  N distinct RS256 tokens, each seen once (parse, claims, key lookup, RSA-2048 verify, cache put)
  cached    one token verified again and again (SHA-256 of the token, LRU lookup, expiry and key checks)
and, to locate the cost, the pieces of the uncached path on their own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt

from sandbox.idp import DevIdentityProvider
from shared.auth import jws, signature
from shared.auth.authenticator import Authenticator
from shared.auth.redact import digest
from shared.config.schema import parse

AUDIENCE = "api://ai-gateway"


def _timed(calls: int, fn: Callable[[], object]) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return {"cpu_us": (time.process_time() - cpu) / calls * 1e6,
            "wall_us": (time.perf_counter() - wall) / calls * 1e6}


async def _timed_async(items: list[Any], fn: Callable[[Any], Awaitable[object]]) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for item in items:
        await fn(item)
    return {"cpu_us": (time.process_time() - cpu) / len(items) * 1e6,
            "wall_us": (time.perf_counter() - wall) / len(items) * 1e6}


async def measure(n_tokens: int, n_cached: int) -> dict[str, Any]:
    idp = DevIdentityProvider()
    await idp.start()
    try:
        config = parse({"identity_providers": [{"name": "dev", "jwks_uri": idp.jwks_uri, "issuer": idp.issuer,
                                                "audiences": [AUDIENCE]}],
                        "external_identities": [{"name": "developers", "identity_provider": "dev",
                                                 "claims": {"groups": "developers"}}]})
        auth = Authenticator(allow_http_loopback=True)
        mint_started = time.perf_counter()
        tokens = [idp.mint(f"user-{i}", claims={"groups": ["developers"]}, audience=AUDIENCE)
                  for i in range(n_tokens + 1)]
        mint_seconds = time.perf_counter() - mint_started
        warm = tokens.pop()
        await auth.authenticate(warm, config)          # fetches the keys once
        fetches_warm = idp.fetch_count

        uncached = await _timed_async(tokens, lambda t: auth.authenticate(t, config))
        repeats = [warm] * n_cached
        cached = await _timed_async(repeats, lambda t: auth.authenticate(t, config))
        fetches_after = idp.fetch_count

        # The pieces, to see where an uncached verification spends its time.
        token = tokens[0]
        parsed = jws.parse(token)
        source = auth.keys.source(config.identity_providers[0])
        hit = await source.key(parsed.kid)
        public_pem = hit.key.key
        pieces = {
            "sha256 of the token": _timed(n_cached, lambda: digest(token)),
            "jws.parse (strict base64url + JSON)": _timed(n_tokens, lambda: jws.parse(token)),
            "RSA-2048 signature verify": _timed(n_tokens, lambda: signature.verify(
                "RS256", hit.key.key, parsed.signing_input, parsed.signature)),
            "PyJWT jwt.decode RS256 (reference)": _timed(n_tokens, lambda: jwt.decode(
                token, public_pem, algorithms=["RS256"], audience=AUDIENCE)),  # type: ignore[arg-type]
        }
        await auth.aclose()
        return {
            "tokens": n_tokens, "cached_calls": n_cached, "mint_seconds": round(mint_seconds, 2),
            "uncached": uncached, "cached": cached,
            "uncached_per_second": 1e6 / uncached["cpu_us"], "cached_per_second": 1e6 / cached["cpu_us"],
            "key_fetches_to_warm": fetches_warm, "key_fetches_once_warm": fetches_after - fetches_warm,
            "cache_hits": auth.tokens.hits, "pieces": pieces,
        }
    finally:
        await idp.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.auth", description=__doc__)
    parser.add_argument("--tokens", type=int, default=1000, help="distinct tokens verified uncached")
    parser.add_argument("--cached", type=int, default=50000, help="verifications of one cached token")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(measure(args.tokens, args.cached))))


if __name__ == "__main__":
    main()
