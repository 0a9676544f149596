"""Rate limits and budgets end to end: the official openai SDK -> a gateway process with rules -> the
emulator. What a caller sees: OpenAI's 429 shapes and headers, the SDK's retries, the output cap sent
upstream, and a stream's usage settling its reservation without the caller seeing it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import openai
import pytest

from tests.harness import DEVELOPER, NewWorld, World, sandbox_config

MESSAGES = [{"role": "user", "content": "How are you today?"}]
DEFAULT_MAX_TOKENS = 64
MODEL_MAX_OUTPUT = 256
SUBJECTS = ("headers", "refused", "retry", "quota", "stream", "vip", "audit", "free", "near",
            *(f"cap-{n}" for n in (DEFAULT_MAX_TOKENS, MODEL_MAX_OUTPUT, 100)))   # one user per cap case
ADMIN = "user:dev/admin"

RULES: dict[str, Any] = {
    "rate_limits": [
        {"name": "per-user", "when": {"models": {"in": ["gpt-4o"]}}, "per": ["user"],
         "limits": [{"requests": 2, "per": "minute"}, {"tokens": 100000, "per": "minute"},
                    {"tokens": 1000000, "per": "day"}],
         "overrides": [{"bucket": {"user": "user:dev/vip"},
                        "limits": [{"requests": 1000, "per": "minute"}]}]},
        {"name": "watch-embeddings", "when": {"models": {"in": ["embed"]}}, "per": ["user"],
         "limits": [{"requests": 1, "per": "minute"}], "mode": "audit"},
    ],
    "budgets": [{"name": "priced-daily", "when": {"models": {"in": ["priced"]}}, "per": ["user"],
                 "usd": {"day": 0.0002}}],
    "prices": [{"model": "priced", "input": 1.0, "output": 1.0}],
}


def _config(world_parts: dict[str, Any]) -> dict[str, Any]:
    models = world_parts["models"] + [
        {"name": "priced", "targets": [{"account": "emulator", "deployment": "gpt-4o-dep"}]},
        {"name": "free", "targets": [{"account": "emulator", "deployment": "gpt-4o-dep"}]}]
    for model in models:
        if model["name"] == "gpt-4o":
            model["max_output_tokens"] = MODEL_MAX_OUTPUT
    collaborators = world_parts["collaborators"] + [
        {"resource": f"model:{name}", "principal": "identity:developers", "role": "viewer"}
        for name in ("priced", "free")]
    return {**world_parts, "models": models, "collaborators": collaborators, **RULES}


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: Any, emulator: Any) -> Iterator[World]:
    config = _config(sandbox_config(idp, emulator))
    with new_world(config=config, env={"GATEWAY_LIMITS_DEFAULT_MAX_TOKENS": str(DEFAULT_MAX_TOKENS),
                                       "GATEWAY_ADMINS": ADMIN},
                   tokens={sub: DEVELOPER for sub in SUBJECTS}) as world:
        yield world


def _client(world: World, subject: str, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=world.url + "/v1", api_key=world.tokens[subject], **options)


def _minute_left() -> float:
    return 60 - time.time() % 60


def _fresh_minute(needed: float = 8.0) -> None:
    """Wait for the next UTC minute when fewer than `needed` seconds are left in this one, so a test's
    requests share one window."""
    left = _minute_left()
    if left < needed:
        time.sleep(left + 0.2)


def _seconds(duration: str) -> float:
    """OpenAI's reset duration (`6m0s`, `45s`, `0.5s`) in seconds."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:([\d.]+)s)?", duration)
    assert match and duration, duration
    hours, minutes, seconds = (float(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _error(exc: openai.APIStatusError) -> dict[str, Any]:
    return dict(exc.response.json()["error"])


def test_admitted_answers_carry_the_most_restrictive_limits(world: World) -> None:
    _fresh_minute()
    raw = _client(world, "headers").chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES)
    headers = raw.headers
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("2", "1")
    assert headers["x-ratelimit-limit-tokens"] == "100000"      # the minute's, not the day's: fewer left
    assert 0 < int(headers["x-ratelimit-remaining-tokens"]) < 100000
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        assert 0 < _seconds(headers[name]) <= 60          # "59s", or "1m0s" just after the minute began


def test_a_request_over_the_limit_is_refused_in_openais_shape(world: World) -> None:
    _fresh_minute()
    client = _client(world, "refused", max_retries=0)
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    error, headers = _error(refused.value), refused.value.response.headers
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
    assert "per-user" in error["message"] and "minute" in error["message"]
    assert "user:dev" not in error["message"]                   # no caller's identity, not even theirs
    assert 1 <= int(headers["retry-after"]) <= 60 and "x-should-retry" not in headers
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("2", "0")
    assert abs(_seconds(headers["x-ratelimit-reset-requests"]) - int(headers["retry-after"])) <= 1
    _client(world, "free", max_retries=0).chat.completions.create(model="free", messages=MESSAGES)


def test_an_override_replaces_the_limits_of_its_bucket(world: World) -> None:
    _fresh_minute()
    client = _client(world, "vip", max_retries=0)
    for _ in range(4):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert (raw.headers["x-ratelimit-limit-requests"], raw.headers["x-ratelimit-remaining-requests"]) == \
        ("1000", "996")


class _Attempts:
    """The times and answers of every HTTP attempt the SDK makes."""

    def __init__(self) -> None:
        self.sent: list[float] = []
        self.answers: list[httpx.Response] = []

    def client(self) -> httpx.Client:
        return httpx.Client(event_hooks={"request": [lambda _: self.sent.append(time.time())],
                                         "response": [self.answers.append]})


def test_the_sdk_waits_out_retry_after_and_then_succeeds(world: World) -> None:
    left = _minute_left()
    if left > 3:                    # start near the minute's end, so the wait is short
        time.sleep(left - 3)
    client = _client(world, "retry", max_retries=0)
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    attempts = _Attempts()
    answer = _client(world, "retry", max_retries=2, http_client=attempts.client()).chat.completions.create(
        model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content
    statuses = [r.status_code for r in attempts.answers]
    assert statuses == [429, 200]
    waited = attempts.sent[1] - attempts.sent[0]
    assert float(attempts.answers[0].headers["retry-after-ms"]) / 1000 - 0.05 <= waited < 5


def test_a_spent_budget_is_insufficient_quota_and_not_retried(world: World) -> None:
    client = _client(world, "quota", max_retries=0)
    # 1 micro-USD per token and a budget of 200: each request reserves its prompt plus 130 tokens, so
    # only settling each with the few tokens it used lets a second one in.
    body = {"model": "priced", "messages": MESSAGES, "max_tokens": 130}
    admitted = 0
    with pytest.raises(openai.RateLimitError):
        for _ in range(20):
            client.chat.completions.create(**body)
            admitted += 1
    assert admitted >= 2
    attempts = _Attempts()
    with pytest.raises(openai.RateLimitError) as refused:
        _client(world, "quota", max_retries=3, http_client=attempts.client()).chat.completions.create(**body)
    error, headers = _error(refused.value), refused.value.response.headers
    assert error["code"] == "insufficient_quota" and "priced-daily" in error["message"]
    assert headers["x-should-retry"] == "false" and int(headers["retry-after"]) >= 1
    assert len(attempts.answers) == 1                           # the SDK did not retry


def _upstream_body(world: World, request_id: str) -> dict[str, Any]:
    seen = [r for r in world.emulator.requests if r.headers.get("x-request-id") == request_id]
    assert len(seen) == 1
    return dict(json.loads(seen[0].body))


@pytest.mark.parametrize(("sent", "upstream"), [
    ({}, DEFAULT_MAX_TOKENS),                                   # none sent: the default is injected
    ({"max_tokens": 10_000}, MODEL_MAX_OUTPUT),                 # above the model's maximum: clamped
    ({"max_tokens": 100}, 100),                                 # within it: unchanged
])
def test_the_output_cap_is_sent_upstream(world: World, sent: dict[str, int], upstream: int) -> None:
    _fresh_minute(3)
    request_id = f"cap-{uuid.uuid4().hex[:12]}"
    client = _client(world, f"cap-{upstream}", default_headers={"x-request-id": request_id})
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, **sent)
    body = _upstream_body(world, request_id)
    assert body.get("max_tokens", body.get("max_completion_tokens")) == upstream


def test_a_rule_on_requests_alone_leaves_the_body_as_sent(world: World) -> None:
    """vip's override counts requests only: nothing to reserve, so no output cap is injected."""
    _fresh_minute(3)
    request_id = f"vip-{uuid.uuid4().hex[:12]}"
    client = _client(world, "vip", default_headers={"x-request-id": request_id})
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    body = _upstream_body(world, request_id)
    assert "max_tokens" not in body and "max_completion_tokens" not in body


def _stream(client: openai.OpenAI, **options: Any) -> tuple[int, list[dict[str, Any]]]:
    with client.chat.completions.with_streaming_response.create(
            model="gpt-4o", messages=MESSAGES, stream=True, **options) as response:
        remaining = int(response.headers["x-ratelimit-remaining-tokens"])
        events = [json.loads(line[6:]) for line in response.iter_lines()
                  if line.startswith("data: {")]
    return remaining, events


def test_a_stream_settles_with_the_usage_its_caller_did_not_ask_for(world: World) -> None:
    _fresh_minute()
    client = _client(world, "stream", max_retries=0)
    before, unasked = _stream(client)
    after, asked = _stream(client, stream_options={"include_usage": True})
    assert all("usage" not in event for event in unasked)       # the injected usage chunk is not shown
    usage = asked[-1]["usage"]
    assert before - after == usage["total_tokens"]               # the first stream cost its real usage


def test_an_audit_rule_logs_and_never_refuses(world: World) -> None:
    _fresh_minute()
    client = _client(world, "audit", max_retries=0)
    for _ in range(3):
        raw = client.embeddings.with_raw_response.create(model="embed", input="hello")
        assert raw.http_response.status_code == 200
        assert "x-ratelimit-limit-requests" not in raw.headers   # an audit rule sets no headers
    deadline = time.time() + 5
    while "audit: rate limit watch-embeddings would refuse" not in world.logs() and time.time() < deadline:
        time.sleep(0.1)
    assert "audit: rate limit watch-embeddings would refuse" in world.logs()


def test_a_model_no_rule_meets_carries_no_limit_headers(world: World) -> None:
    raw = _client(world, "free").chat.completions.with_raw_response.create(model="free", messages=MESSAGES)
    assert not [name for name in raw.headers if name.startswith("x-ratelimit-")]


def test_status_shows_the_buckets_near_their_limits(world: World) -> None:
    _fresh_minute()
    client = _client(world, "near", max_retries=0)
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    answer = world.api("admin").get("status")
    assert answer.status_code == 200
    bucket = "per-user{user=user:dev/near}"
    near = [b for b in answer.json()["limits"]["rate limit per-user"] if b["bucket"] == bucket]
    assert near == [{"bucket": bucket, "metric": "requests", "window": "minute", "used": 2, "limit": 2,
                     "resets_in": near[0]["resets_in"]}]
