"""AADSTS translation on its own: every code we know names its field; the rest stay readable."""

from __future__ import annotations

import json

import pytest

from shared.upstream.entra import Attempt, EntraError, explain, parse_error
from shared.upstream.sources import default_scope
from tests.upstream.helpers import account

WI = Attempt(auth_type="workload-identity", tenant_id="tid", client_id="cid",
             authority="https://login.microsoftonline.com",
             scope="https://cognitiveservices.azure.com/.default",
             assertion_source="kubernetes", assertion_options={"namespace": "ai", "service_account": "gw"},
             assertion_claims={"iss": "https://oidc.example", "sub": "system:serviceaccount:ai:gw",
                               "aud": ["api://AzureADTokenExchange"], "nbf": 0, "exp": 60})
SECRET = Attempt(auth_type="client-secret", tenant_id="tid", client_id="cid",
                 authority="https://login.microsoftonline.com", scope="s/.default",
                 secret_env="GATEWAY_SECRET_AOAI")
CERT = Attempt(auth_type="certificate", tenant_id="tid", client_id="cid",
               authority="https://login.microsoftonline.com", scope="s/.default", certificate_path="/c.pem")


def error(code: int) -> EntraError:
    return EntraError(error="invalid_request", description=f"AADSTS{code}: something. Trace ID: x",
                      codes=(code,))


@pytest.mark.parametrize(("code", "attempt", "field", "words"), [
    (70021, WI, "issuer, subject, audience", "subject 'system:serviceaccount:ai:gw'"),
    (700211, WI, "issuer", "has issuer 'https://oidc.example'"),
    (700212, WI, "audience", "accepts audience 'api://AzureADTokenExchange'"),
    (700213, WI, "subject",
     "matches issuer 'https://oidc.example' and subject 'system:serviceaccount:ai:gw'"),
    (70025, WI, "federated credential", "has no federated credentials"),
    (700016, WI, "client_id", "no application with client id 'cid'"),
    (90002, WI, "tenant_id", "has no tenant 'tid'"),
    (900023, WI, "tenant_id", "'tid' is not a valid tenant"),
    (7000215, SECRET, "secret_env", "the value in environment variable GATEWAY_SECRET_AOAI"),
    (7000222, SECRET, "secret_env", "GATEWAY_SECRET_AOAI has expired"),
    (700027, CERT, "certificate_path", "the certificate at /c.pem is not registered"),
    (50013, WI, "issuer", "does not verify against the keys"),
    (50166, WI, "issuer", "could not fetch the OpenID configuration"),
    (700024, WI, "assertion", "valid from 1970-01-01T00:00:00Z to 1970-01-01T00:01:00Z"),
    (50053, SECRET, "credential", "temporarily blocked"),
    (70011, WI, "scope", "set auth.scope"),
    (1002012, WI, "scope", "set auth.scope"),
    (500011, WI, "scope", "no resource for scope"),
    (7000112, WI, "client_id", "is disabled"),
    (700025, WI, "client_id", "public client"),
    (53003, WI, "conditional access", "conditional access policy"),
])
def test_each_code_names_its_field(code: int, attempt: Attempt, field: str, words: str) -> None:
    problem = explain(error(code), attempt)
    assert problem.field == field
    assert f"(AADSTS{code})" in problem.message and words in problem.message


def test_the_credential_is_named_by_auth_type() -> None:
    assert explain(error(700213), WI).message.startswith("Entra refused the client assertion (AADSTS700213)")
    assert explain(error(7000215), SECRET).message.startswith("Entra refused the client secret")


def test_an_unknown_code_keeps_entras_words_without_the_trace_lines() -> None:
    description = "AADSTS123456: Odd thing happened. Trace ID: abc Correlation ID: d"
    problem = explain(EntraError(error="invalid_request", codes=(123456,), description=description), WI)
    assert problem.message == "Entra refused the token request (AADSTS123456): Odd thing happened."
    assert problem.field is None


def test_outages_are_transient() -> None:
    problem = explain(EntraError(error="temporarily_unavailable", description="AADSTS90033: busy",
                                 codes=(90033,), status=503), WI)
    assert problem.transient and "is unavailable" in problem.message


def test_parse_entras_error_json() -> None:
    body = json.dumps({"error": "invalid_client", "error_codes": [7000215], "trace_id": "t",
                       "correlation_id": "c",
                       "error_description": "AADSTS7000215: Invalid client secret provided. Trace ID: t"})
    parsed = parse_error(body, 401)
    assert parsed is not None
    assert (parsed.code, parsed.trace_id, parsed.status) == (7000215, "t", 401)
    assert parsed.summary == "Invalid client secret provided."
    assert parse_error("<html>busy</html>") is None
    assert parse_error(json.dumps({"error": "x", "error_description": "AADSTS50053: locked"})).code == 50053


@pytest.mark.parametrize(("kind", "endpoint", "scope"), [
    ("azure-openai", "https://acme.openai.azure.com", "https://cognitiveservices.azure.com/.default"),
    ("ai-foundry", "https://acme.services.ai.azure.com", "https://cognitiveservices.azure.com/.default"),
    ("ai-foundry", "https://acme.services.ai.azure.com/api/projects/p1", "https://ai.azure.com/.default"),
    ("azure-openai", "https://acme.openai.azure.us", "https://cognitiveservices.azure.us/.default"),
    ("azure-openai", "https://acme.openai.azure.cn", "https://cognitiveservices.azure.cn/.default"),
])
def test_default_scope(kind: str, endpoint: str, scope: str) -> None:
    acct = account({"type": "managed-identity"}, endpoint=endpoint, kind=kind)
    assert default_scope(acct) == scope


def test_configured_scope_wins() -> None:
    acct = account({"type": "managed-identity", "scope": "api://custom/.default"},
                   endpoint="https://acme.services.ai.azure.com/api/projects/p1", kind="ai-foundry")
    assert default_scope(acct) == "api://custom/.default"
