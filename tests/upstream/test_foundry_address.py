"""A Foundry account's upstream request, built from the account and target alone: the URL, the body and
the headers of each API style, the scope it asks Entra for, and the rules that keep `api_style: models`
to what it can serve."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.config.document import item_document, to_document
from shared.config.model import Account, Model, Target
from shared.config.schema import ConfigError, parse, parse_item
from shared.errors import InvalidRequest
from shared.proxy.operations import served
from shared.upstream.address import serves, upstream_body, upstream_headers, upstream_url
from shared.upstream.sources import default_scope

RESOURCE = "https://acme.services.ai.azure.com"
PROJECT = "https://acme.services.ai.azure.com/api/projects/research"
AUTH = {"type": "api-key", "key_env": "GATEWAY_SECRET_K"}
DOC: dict[str, Any] = {"model": "deepseek", "messages": [{"role": "user", "content": "hi"}]}
RAW = json.dumps(DOC).encode()
TARGET = Target(account="a", deployment="DeepSeek-R1")


def account(**fields: Any) -> Account:
    doc = {"name": "a", "kind": "ai-foundry", "endpoint": RESOURCE, "auth": AUTH, **fields}
    return parse_item("accounts", doc, allowlist=None)


@pytest.mark.parametrize(("fields", "operation", "query", "url"), [
    ({"api_style": "models"}, "chat/completions", {},
     f"{RESOURCE}/models/chat/completions?api-version=2024-05-01-preview"),
    ({"api_style": "models"}, "embeddings", {"api-version": "2024-10-21"},   # the caller's is Azure OpenAI's
     f"{RESOURCE}/models/embeddings?api-version=2024-05-01-preview"),
    ({"api_style": "models", "api_version": "2025-04-01"}, "chat/completions", {},
     f"{RESOURCE}/models/chat/completions?api-version=2025-04-01"),
    ({}, "chat/completions", {"api-version": "2025-01-01-preview"},
     f"{RESOURCE}/openai/deployments/DeepSeek-R1/chat/completions?api-version=2025-01-01-preview"),
    ({}, "embeddings", {}, f"{RESOURCE}/openai/deployments/DeepSeek-R1/embeddings?api-version=2024-10-21"),
    ({"api_style": "v1"}, "chat/completions", {}, f"{RESOURCE}/openai/v1/chat/completions"),
    ({}, "responses", {}, f"{RESOURCE}/openai/v1/responses"),
    ({"endpoint": PROJECT}, "chat/completions", {},
     f"{PROJECT}/openai/deployments/DeepSeek-R1/chat/completions?api-version=2024-10-21"),
])
def test_url_of_each_style(fields: dict[str, Any], operation: str, query: dict[str, str], url: str) -> None:
    assert upstream_url(account(**fields), TARGET, operation, query) == url


@pytest.mark.parametrize(("style", "operation", "body", "headers"), [
    ("models", "chat/completions", {**DOC, "model": "DeepSeek-R1"}, {"extra-parameters": "pass-through"}),
    ("models", "embeddings", {**DOC, "model": "DeepSeek-R1"}, {"extra-parameters": "pass-through"}),
    ("v1", "chat/completions", {**DOC, "model": "DeepSeek-R1"}, {}),
    ("deployments", "chat/completions", None, {}),        # None: the caller's own bytes
])
def test_body_and_headers_of_each_style(style: str, operation: str, body: dict[str, Any] | None,
                                        headers: dict[str, str]) -> None:
    a = account(api_style=style)
    sent = upstream_body(a, TARGET, operation, RAW, DOC)
    assert (sent is RAW) if body is None else json.loads(sent) == body
    assert dict(upstream_headers(a)) == headers


@pytest.mark.parametrize(("style", "operation", "ok"), [
    ("models", "chat/completions", True), ("models", "embeddings", True),
    ("models", "completions", False), ("models", "responses", False),
    ("deployments", "completions", True), ("deployments", "responses", True), ("v1", "responses", True),
])
def test_what_each_style_serves(style: str, operation: str, ok: bool) -> None:
    a = account(api_style=style)
    assert serves(a, operation) is ok
    if not ok:
        with pytest.raises(InvalidRequest, match=f"account a does not serve {operation}"):
            upstream_url(a, TARGET, operation, {})


def test_a_model_keeps_only_the_targets_that_serve_the_operation() -> None:
    accounts = {"m": account(name="m", api_style="models"), "d": account(name="d")}
    both = Model(name="x", targets=(Target("m", "Phi-4"), Target("d", "gpt-4o"), Target("gone", "y")))
    assert served(both, accounts, "chat/completions") is both
    assert served(both, accounts, "completions").targets == (Target("d", "gpt-4o"), Target("gone", "y"))
    only = Model(name="phi", targets=(Target("m", "Phi-4"),))
    with pytest.raises(InvalidRequest) as caught:
        served(only, accounts, "responses")
    assert (caught.value.status, caught.value.param) == (400, "model")
    assert caught.value.message == ("model 'phi' does not support responses; it supports chat/completions "
                                    "and embeddings")


@pytest.mark.parametrize(("fields", "scope"), [
    ({"api_style": "models"}, "https://cognitiveservices.azure.com/.default"),
    ({}, "https://cognitiveservices.azure.com/.default"),
    ({"endpoint": PROJECT}, "https://ai.azure.com/.default"),
    ({"endpoint": "https://acme.services.ai.azure.us", "api_style": "models"},
     "https://cognitiveservices.azure.us/.default"),
])
def test_scope_of_a_foundry_account(fields: dict[str, Any], scope: str) -> None:
    auth = {"type": "managed-identity"}
    assert default_scope(account(auth=auth, **fields)) == scope


@pytest.mark.parametrize(("fields", "field", "problem"), [
    ({"kind": "azure-openai", "endpoint": "https://acme.openai.azure.com", "api_style": "models"},
     "accounts[0].api_style", "models is only for kind ai-foundry"),
    ({"endpoint": PROJECT, "api_style": "models"}, "accounts[0].api_style", "not a project's"),
    ({"api_style": "inference"}, "accounts[0].api_style", "must be one of deployments, v1, models"),
    ({"api_style": "models", "api_version": "latest"}, "accounts[0].api_version", "must look like"),
])
def test_bad_api_style_names_the_field(fields: dict[str, Any], field: str, problem: str) -> None:
    doc = {"name": "a", "kind": "ai-foundry", "endpoint": RESOURCE, "auth": AUTH, **fields}
    with pytest.raises(ConfigError) as caught:
        parse({"accounts": [doc]})
    assert caught.value.field == field and problem in caught.value.problem


@pytest.mark.parametrize(("fields", "written"), [
    ({"api_style": "models"}, {"api_style": "models"}),
    ({"api_style": "models", "api_version": "2024-05-01-preview"}, {"api_style": "models"}),
    ({"api_style": "models", "api_version": "2025-04-01"},
     {"api_style": "models", "api_version": "2025-04-01"}),
    ({"api_version": "2024-05-01-preview"}, {"api_version": "2024-05-01-preview"}),
    ({}, {}),
])
def test_export_writes_the_style_and_a_version_only_when_not_its_default(
        fields: dict[str, Any], written: dict[str, str]) -> None:
    doc = {"name": "a", "kind": "ai-foundry", "endpoint": RESOURCE, "auth": AUTH, **fields}
    config = parse({"accounts": [doc]})
    exported = to_document(config)
    assert exported["accounts"] == [item_document(config.accounts[0])]
    assert {k: v for k, v in exported["accounts"][0].items() if k.startswith("api_")} == written
    assert parse(exported) == config       # export reads back as what was applied


@pytest.mark.parametrize(("endpoint", "admitted"), [
    (RESOURCE, True), ("https://acme.services.ai.azure.us", True),
    ("https://acme.services.ai.azure.cn", True),
    ("https://acme.services.ai.azure.com.evil.example", False), ("https://services.ai.azure.com", False),
])
def test_foundry_resource_hosts_are_admitted_by_default(endpoint: str, admitted: bool) -> None:
    doc = {"name": "a", "kind": "ai-foundry", "endpoint": endpoint, "api_style": "models", "auth": AUTH}
    if admitted:
        assert parse({"accounts": [doc]}).accounts[0].endpoint == endpoint
    else:
        with pytest.raises(ConfigError) as caught:
            parse({"accounts": [doc]})
        assert caught.value.field == "accounts[0].endpoint"
