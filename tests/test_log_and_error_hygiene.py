"""What a hostile caller can make the gateway write: log lines it cannot forge or colour, errors that
name the failed check but not the configuration, and refusals that never echo a credential. Seen
from outside, on the real gateway process and its stderr."""

from __future__ import annotations

import http.client
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.azurite import Azurite
from sandbox.idp import DevIdentityProvider
from tests.harness import GatewayProcess, NewWorld, RawAnswer, Tables, World, gateway_env, unique_prefix

AUDIENCE = "api://ai-gateway"
FORGED = "2030-01-01 00:00:00,000 INFO gateway.request forged line"
RAW_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f]")   # anything but the newline that ends a record



def call(gw: GatewayProcess, method: str, path: str, headers: dict[str, str] | None = None,
         body: Any = None, timeout: float = 20) -> RawAnswer:
    """One request with the path sent exactly as given (no client-side normalising)."""
    connection = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=data, headers={
            **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})})
        response = connection.getresponse()
        return RawAnswer(response.status, {k.lower(): v for k, v in response.getheaders()},
                         response.read())
    finally:
        connection.close()


@pytest.fixture(scope="module")
def world(new_world: NewWorld) -> Iterator[World]:
    with new_world(env={"GATEWAY_ADMINS": "user:dev/alice"}) as world:   # alice, the token, is an admin
        yield world


def lines_of(gw: GatewayProcess, request_id: str) -> list[str]:
    """The log lines of one request, after the gateway has written them."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [line for line in gw.logs().split("\n") if request_id in line]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no log line with request id {request_id}")


def assert_no_forgery(gw: GatewayProcess) -> None:
    text = gw.logs()
    assert not RAW_CONTROLS.search(text), "a raw control character reached the log"
    assert not any(line.startswith(FORGED) for line in text.split("\n")), "a forged line in the log"


def rid() -> str:
    return uuid.uuid4().hex


# -- logs -----------------------------------------------------------------------------------------

def test_attack_log_injection_crlf_in_path(world: World) -> None:
    """%0D%0A and %1B in the path are decoded before routing and the path is logged: escaped."""
    request_id = rid()
    forged = "gpt%0D%0A" + FORGED.replace(" ", "%20") + "%1B[31m%07%E2%80%AE"
    answer = call(world.gw, "POST", f"/openai/deployments/{forged}/chat/completions?api-version=1",
                  {"Authorization": f"Bearer {world.token}", "x-request-id": request_id}, {})
    assert answer.status_code in (400, 404)
    (line,) = lines_of(world.gw, request_id)
    assert "\\r\\n" + FORGED in line and "\\x1b[31m" in line and "\\x07" in line and "\\u202e" in line
    assert_no_forgery(world.gw)


@pytest.mark.parametrize("sub", [f"eve\r\n{FORGED}", "eve\x1b[31mred\x1b[0m", "eve\u2028" + FORGED],
                         ids=["crlf", "escape", "line-separator"])
def test_attack_log_injection_escape_in_sub(world: World, sub: str) -> None:
    """A valid token whose `sub` carries CR/LF, ESC or U+2028: the request's log line names the
    principal with those escaped."""
    token = world.idp.mint(sub, claims={"groups": ["developers"]}, audience=AUDIENCE)
    request_id = rid()
    answer = call(world.gw, "POST", "/v1/chat/completions",
                  {"Authorization": f"Bearer {token}", "x-request-id": request_id},
                  {"model": "secret-model", "messages": []})
    assert answer.status_code == 404
    (line,) = lines_of(world.gw, request_id)
    assert "principal=user:dev/eve\\" in line
    assert_no_forgery(world.gw)


@pytest.mark.parametrize(("fields", "refusal"), [
    ({"issuer": f"https://evil.example/\r\n{FORGED}\x1b[2J"}, "token refused: unknown issuer"),
    ({"headers": {"kid": f"k\r\n{FORGED}"}}, "token refused: token header kid"),
], ids=["iss", "kid"])
def test_attack_log_injection_in_refused_token_claims(world: World, fields: dict[str, Any],
                                                      refusal: str) -> None:
    """iss and kid of a refused token reach the refusal's log line (and explain): escaped."""
    token = world.idp.mint("eve", audience=AUDIENCE, **fields)
    answer = call(world.gw, "GET", "/v1/models", {"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    time.sleep(0.3)
    assert refusal in world.logs()
    assert_no_forgery(world.gw)


# -- credentials in unsupported schemes -------------------------------------------------------------

@pytest.mark.parametrize(("authorization", "secret"), [
    ("Basic dXNlcjpzM2NyM3RwYXNzd29yZA==", "dXNlcjpzM2NyM3RwYXNzd29yZA"),
    ("sk-proj-s3cr3tK3yMaterial0123456789", "s3cr3tK3y"),
    ("Token abc123s3cr3t", "abc123s3cr3t"),
    ("s3cr3tnospace", "s3cr3tnospace"),
    ("ApiKey s3cr3t=\r", "s3cr3t"),
], ids=["basic", "sk-key", "token-scheme", "bare", "apikey"])
def test_attack_basic_credential_not_echoed(world: World, authorization: str, secret: str) -> None:
    request_id = rid()
    answer = call(world.gw, "GET", "/v1/models",
                  {"Authorization": authorization.strip(), "x-request-id": request_id})
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_token"
    seen = answer.text + json.dumps(dict(answer.headers))
    assert secret not in seen and secret.lower() not in seen.lower()
    assert "Bearer" in answer.json()["error"]["message"]         # it says what to send instead
    time.sleep(0.3)
    assert secret not in world.logs()


# -- errors name the check, not the configuration ---------------------------------------------------

def _refusals(idp: DevIdentityProvider) -> list[tuple[str, str, str]]:
    """(id, token, words the caller reads)."""
    return [
        ("audience", idp.mint("eve", audience="api://other"), "audience mismatch"),
        ("no-aud", idp.mint("eve"), "token has no aud claim"),
        ("issuer", idp.mint("eve", audience=AUDIENCE, issuer=idp.issuer + "/"), "unknown issuer"),
        ("kid", idp.mint("eve", audience=AUDIENCE, headers={"kid": "rotated-away"}), "unknown key id"),
        ("expired", idp.mint("eve", audience=AUDIENCE, expires_in=-3600), "token expired at"),
        ("unique-id", idp.mint(None, audience=AUDIENCE), "missing unique-id claim"),
    ]


def test_attack_unauthenticated_errors_reveal_no_configuration(world: World) -> None:
    """Audiences, issuers, provider and claim names and the clock skew stay out of what an
    unauthenticated caller reads; the failed check is still named. /manage/explain has the rest."""
    idp = world.idp
    secrets = (AUDIENCE, idp.issuer, str(idp.port), "'dev'", "'sub'", "clock skew", "identity provider")
    for name, token, words in _refusals(idp):
        answer = call(world.gw, "GET", "/v1/models", {"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, name
        message = answer.json()["error"]["message"]
        challenge = answer.headers["www-authenticate"]
        assert words in message and words in challenge, (name, message)
        for secret in secrets:
            assert secret not in message and secret not in challenge, (name, secret, message)
    explained = call(world.gw, "POST", "/manage/explain", {"Authorization": f"Bearer {world.token}"},
                     {"token": _refusals(idp)[0][1], "resource": "model:gpt-4o"}).json()
    assert explained["allowed"] is False and f"expected one of {AUDIENCE!r}" in explained["reason"]


def test_attack_storage_down_503_names_no_storage_host(world: World, azurite: Azurite,
                                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    """Storage unreachable and no configuration yet: the caller gets a plain 503, the log the details."""
    dead = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:9", azurite.connection_string)
    env = {**gateway_env(Tables(azurite, unique_prefix())), "GATEWAY_TABLES_CONNECTION": dead}
    gw = GatewayProcess(env, tmp_path_factory.mktemp("gw-down") / "gateway.log")
    try:
        answer = call(gw, "POST", "/v1/chat/completions", {"Authorization": f"Bearer {world.token}"},
                      {"model": "gpt-4o", "messages": []}, timeout=110)
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "unavailable"
        assert "127.0.0.1:9" not in answer.text and "table" not in answer.text
        assert "try again later" in answer.json()["error"]["message"]
        time.sleep(0.3)
        assert "127.0.0.1:9" in gw.logs()      # the details are for the operator
    finally:
        gw.stop()
