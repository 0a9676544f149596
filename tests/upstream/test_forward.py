"""Forwarding rules that hold whatever the upstream answers."""

from __future__ import annotations

import pytest

from shared.config.schema import parse
from shared.errors import Unavailable
from shared.upstream.forward import check_endpoint, upstream_body, upstream_url


def account(endpoint: str, **extra: str):  # type: ignore[no-untyped-def]
    doc = {"accounts": [{"name": "a", "endpoint": endpoint, "auth": {"type": "api-key", "key_env": "K"},
                         **extra}]}
    return parse(doc).accounts[0]


@pytest.mark.parametrize(("endpoint", "allow", "ok"), [
    ("https://acme.openai.azure.com", False, True),
    ("http://127.0.0.1:7082", True, True),
    ("http://[::1]:7082", True, True),
    ("http://localhost:7082", True, True),
    ("http://127.0.0.1:7082", False, False),
    ("http://acme.openai.azure.com", True, False),
    ("http://10.0.0.5", True, False),
])
def test_plain_http_only_on_loopback_with_the_bypass(endpoint: str, allow: bool, ok: bool) -> None:
    if ok:
        check_endpoint(account(endpoint), allow)
    else:
        with pytest.raises(Unavailable, match="must use https"):
            check_endpoint(account(endpoint), allow)


def test_deployment_style_keeps_the_callers_bytes() -> None:
    a = account("https://x.openai.azure.com")
    target = parse({"accounts": [{"name": "a", "endpoint": "https://x.openai.azure.com",
                                  "auth": {"type": "api-key", "key_env": "K"}}],
                    "models": [{"name": "m", "targets": [{"account": "a", "deployment": "dep/1"}]}]}
                   ).models[0].targets[0]
    assert upstream_url(a, target, "chat/completions", {"api-version": "2025-01-01", "x": "y"}) == (
        "https://x.openai.azure.com/openai/deployments/dep%2F1/chat/completions?api-version=2025-01-01")
    assert upstream_url(a, target, "embeddings", {}).endswith("?api-version=2024-10-21")
    raw = b'{"model": "m", "input": "hi"}'
    assert upstream_body(a, target, "embeddings", raw, {"model": "m", "input": "hi"}) is raw
    assert upstream_url(a, target, "responses", {}) == "https://x.openai.azure.com/openai/v1/responses"
    assert upstream_body(a, target, "responses", raw, {"model": "m"}) == b'{"model":"dep/1"}'
    v1 = account("https://x.openai.azure.com", api_style="v1")
    assert upstream_url(v1, target, "embeddings", {}) == "https://x.openai.azure.com/openai/v1/embeddings"
    assert upstream_body(v1, target, "embeddings", raw, {"model": "m", "input": "hi"}) == (
        b'{"model":"dep/1","input":"hi"}')
