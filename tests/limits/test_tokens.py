"""The prompt estimate: tiktoken's own counts, OpenAI's message overheads, bounds for what cannot be
tokenized, the output cap injected, and no network at any point."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import tiktoken

from sandbox.emulator import AzureOpenAIEmulator
from shared.limits import encodings
from shared.limits.tokens import (
    DEFAULT_IMAGE_TOKENS,
    MESSAGE_TOKENS,
    REPLY_TOKENS,
    THREAD_BYTES,
    areserve,
    estimate_prompt,
    reserve,
)
from tests.harness import EMULATOR_KEY

ROOT = Path(__file__).resolve().parents[2]
BPE = ROOT / "shared" / "limits" / "bpe"
URLS = {"o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"}

# Refuses every connection and name lookup of the process it is run in.
SOCKET_GUARD = """
import socket
def _refuse(*args, **kwargs):
    raise OSError("network use refused by the test")
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.getaddrinfo = _refuse
socket.create_connection = _refuse
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tiktoken.Encoding]]:
    """tiktoken's own encodings, from its own constructors, fed from a cache directory laid out as
    tiktoken lays it out (sha1 of the URL) so that it downloads nothing either."""
    from tiktoken_ext import openai_public

    cache = tmp_path_factory.mktemp("tiktoken")
    for name, url in URLS.items():
        raw = gzip.decompress((BPE / f"{name}.tiktoken.gz").read_bytes())
        (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(raw)
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    try:
        yield {name: tiktoken.Encoding(**getattr(openai_public, name)()) for name in URLS}
    finally:
        if saved is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR")
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved


@pytest.mark.parametrize("name", sorted(URLS))
def test_the_shipped_encodings_are_tiktokens_own(reference: dict[str, tiktoken.Encoding], name: str) -> None:
    ours, theirs = encodings.encoding(name), reference[name]
    assert ours._pat_str == theirs._pat_str
    assert ours._special_tokens == theirs._special_tokens
    assert ours._mergeable_ranks == theirs._mergeable_ranks


TEXTS = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "def f(x):\n    return x ** 2  # squares\n\n\n",
    "naïve café, Übergrößenträger, 東京都の天気は晴れです, Привет мир",
    "emoji 👩🏽‍💻🚀 and combining e\u0301",
    "   leading and trailing spaces   \t\n",
    "<|endoftext|> is text here, not a special token <|endofprompt|>",
    "1234567890 3.14159 1e-9 0xdeadbeef",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
]


@pytest.mark.parametrize(("names", "encoding"), [(("gpt-4o",), "o200k_base"),
                                                 (("gpt-35-turbo",), "cl100k_base")])
@pytest.mark.parametrize("text", TEXTS)
def test_text_counts_are_tiktokens(reference: dict[str, tiktoken.Encoding], names: tuple[str, ...],
                                   encoding: str, text: str) -> None:
    expected = len(reference[encoding].encode_ordinary(text))
    assert estimate_prompt("embeddings", {"input": text}, names) == expected
    assert estimate_prompt("completions", {"prompt": text}, names) == expected


@pytest.mark.parametrize(("names", "expected"), [
    ((), ("o200k_base",)),
    (("gpt-4o",), ("o200k_base",)),
    (("my-model", "gpt-4o-2024-08-06"), ("o200k_base",)),
    (("gpt-4.1-mini",), ("o200k_base",)),
    (("o3-mini",), ("o200k_base",)),
    (("gpt-5",), ("o200k_base",)),
    (("gpt-4",), ("cl100k_base",)),
    (("gpt-4-turbo",), ("cl100k_base",)),
    (("GPT-35-Turbo",), ("cl100k_base",)),
    (("text-embedding-3-small",), ("cl100k_base",)),
    (("text-embedding-ada-002",), ("cl100k_base",)),
    (("chat", "gpt-35-turbo", "gpt-4o"), ("o200k_base", "cl100k_base")),   # disagree: count with both
])
def test_the_encoding_follows_the_models_names(names: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert encodings.encoding_names(names) == expected


def test_names_that_disagree_count_the_larger(reference: dict[str, tiktoken.Encoding]) -> None:
    text = TEXTS[3]
    counts = [len(e.encode_ordinary(text)) for e in reference.values()]
    assert counts[0] != counts[1]
    assert estimate_prompt("embeddings", {"input": text}, ("gpt-4o", "gpt-35-turbo")) == max(counts)


def test_a_chat_is_counted_as_openai_counts_it(reference: dict[str, tiktoken.Encoding]) -> None:
    """OpenAI's recipe: per message 3 tokens plus every value's tokens, a name 1 more, the reply 3."""
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "name": "example_user",
                 "content": "New synergies will help drive top-line growth."},
                {"role": "assistant", "content": [{"type": "text", "text": "Things working well together"},
                                                  {"type": "text", "text": " will increase revenue."}]}]
    enc = reference["o200k_base"]
    texts = ["system", "You are a helpful assistant.", "user", "example_user",
             "New synergies will help drive top-line growth.", "assistant",
             "Things working well together", " will increase revenue."]
    counted = sum(len(enc.encode_ordinary(s)) for s in texts)
    expected = REPLY_TOKENS + len(messages) * MESSAGE_TOKENS + 1 + counted
    assert estimate_prompt("chat/completions", {"messages": messages}, ("gpt-4o",)) == expected


def _chat(*parts: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": list(parts)}]}


@pytest.mark.parametrize(("names", "body", "at_least"), [
    # an image costs at least the most the model bills for one
    (("gpt-4o",), _chat({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}), 1445),
    (("gpt-4o-mini",), _chat({"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}),
     48_169),
    (("gpt-4.1-nano",), _chat({"type": "image_url", "image_url": {"url": "x"}}), 3_779),
    (("o4-mini",), _chat({"type": "image_url", "image_url": {"url": "x"}}), 2_642),
    (("gpt-5",), _chat({"type": "image_url", "image_url": {"url": "x"}}), DEFAULT_IMAGE_TOKENS),
    # audio: one token per 32 base64 characters
    (("gpt-4o-audio-preview",), _chat({"type": "input_audio",
                                       "input_audio": {"data": "A" * 3200, "format": "wav"}}), 100),
    # a file, or a part the estimate does not know: one token per byte of its JSON
    (("gpt-4o",), _chat({"type": "file", "file": {"file_data": "B" * 5000}}), 5000),
    (("gpt-4o",), _chat({"type": "mystery", "blob": "C" * 700}), 700),
    # the responses API: instructions and input items, images included
    (("gpt-4o",), {"instructions": "Be brief.", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                     {"type": "input_image", "image_url": "https://example.com/b.png"}]}]},
     DEFAULT_IMAGE_TOKENS + 2 * MESSAGE_TOKENS),
])
def test_what_cannot_be_tokenized_is_bounded_from_above(names: tuple[str, ...], body: dict[str, Any],
                                                        at_least: int) -> None:
    operation = "responses" if "input" in body else "chat/completions"
    assert estimate_prompt(operation, body, names) >= at_least


def test_tools_and_schemas_are_part_of_the_prompt(reference: dict[str, tiktoken.Encoding]) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                             "parameters": {"type": "object",
                                                            "properties": {"city": {"type": "string"}}}}}
    schema = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    plain = {"messages": [{"role": "user", "content": "hi"}]}
    enc = reference["o200k_base"]
    with_tool = estimate_prompt("chat/completions", {**plain, "tools": [tool]}, ("gpt-4o",))
    with_schema = estimate_prompt("chat/completions", {**plain, "response_format": schema}, ("gpt-4o",))
    base = estimate_prompt("chat/completions", plain, ("gpt-4o",))
    assert with_tool - base > len(enc.encode_ordinary(json.dumps(tool, separators=(",", ":"))))
    assert with_schema - base == len(enc.encode_ordinary(json.dumps(schema, separators=(",", ":"))))


@pytest.mark.parametrize(("operation", "body", "expected"), [
    ("embeddings", {"input": [1, 2, 3, 4]}, 4),                      # one token array
    ("embeddings", {"input": [[1, 2, 3], [4, 5]]}, 5),               # token arrays
    ("embeddings", {"input": ["hello world", "hello"]}, 3),          # texts
    ("completions", {"prompt": [[9, 9], [8]]}, 3),
    ("embeddings", {"input": {"odd": "shape"}}, len('{"odd":"shape"}')),   # unknown: its bytes
])
def test_inputs_of_every_shape(operation: str, body: dict[str, Any], expected: int) -> None:
    assert estimate_prompt(operation, body, ("gpt-4o",)) == expected


@pytest.mark.parametrize(("operation", "names", "body", "max_output", "output", "injected"), [
    # none sent: the default, as max_tokens, or max_completion_tokens for a reasoning model
    ("chat/completions", ("gpt-4o",), {}, None, 4096, {"max_tokens": 4096}),
    ("chat/completions", ("reasoner", "o3-mini"), {}, None, 4096, {"max_completion_tokens": 4096}),
    ("chat/completions", ("gpt-5-mini",), {}, 1000, 1000, {"max_completion_tokens": 1000}),
    ("completions", ("gpt-35-turbo-instruct",), {}, None, 4096, {"max_tokens": 4096}),
    ("responses", ("gpt-4o",), {}, None, 4096, {"max_output_tokens": 4096}),
    # sent: kept when within the model's maximum, clamped otherwise
    ("chat/completions", ("gpt-4o",), {"max_tokens": 50}, None, 50, None),
    ("chat/completions", ("o1",), {"max_completion_tokens": 50}, None, 50, None),
    ("chat/completions", ("gpt-4o",), {"max_tokens": 9000}, 2000, 2000, {"max_tokens": 2000}),
    ("responses", ("gpt-4o",), {"max_output_tokens": 9000}, 2000, 2000, {"max_output_tokens": 2000}),
    # null or nonsense is replaced, in the member the caller used
    ("chat/completions", ("gpt-4o",), {"max_tokens": None}, None, 4096, {"max_tokens": 4096}),
    ("chat/completions", ("o1",), {"max_completion_tokens": "lots"}, None, 4096,
     {"max_completion_tokens": 4096}),
    # several choices: each may use the whole cap
    ("chat/completions", ("gpt-4o",), {"max_tokens": 10, "n": 3}, None, 30, None),
    ("completions", ("x",), {"prompt": ["a", "b"], "max_tokens": 10, "best_of": 2}, None, 40, None),
    ("completions", ("x",), {"prompt": [1, 2, 3], "max_tokens": 10}, None, 10, None),
    ("embeddings", ("x",), {"input": "a"}, None, 0, None),
])
def test_the_output_cap(operation: str, names: tuple[str, ...], body: dict[str, Any], max_output: int | None,
                        output: int, injected: dict[str, Any] | None) -> None:
    r = reserve(operation, body, default_max_tokens=4096, max_output=max_output, names=names)
    assert r.output == output
    assert r.doc == (None if injected is None else {**body, **injected})


async def test_a_large_body_gives_the_same_reservation_off_the_loop() -> None:
    body = {"messages": [{"role": "user", "content": "word " * (THREAD_BYTES // 2)}]}
    inline = reserve("chat/completions", body, default_max_tokens=10, names=("gpt-4o",))
    threaded = await areserve("chat/completions", body, size=THREAD_BYTES + 1, default_max_tokens=10,
                              names=("gpt-4o",))
    assert threaded == inline and inline.prompt > THREAD_BYTES // 2


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")}
    env.update(HOME=str(tmp_path), TMPDIR=str(tmp_path))
    return subprocess.run([sys.executable, "-c", SOCKET_GUARD + code], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=120, check=False)


def test_counting_never_touches_the_network(tmp_path: Path) -> None:
    done = _run("from shared.limits.tokens import estimate_prompt\n"
                "print(estimate_prompt('embeddings', {'input': 'hello world'}, ('gpt-4o',)),"
                " estimate_prompt('embeddings', {'input': 'hello world'}, ('gpt-4',)))", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "2"]
    # the guard is real: tiktoken's own loader, with nothing cached, needs the network and is refused
    refused = _run("import tiktoken\ntiktoken.get_encoding('o200k_base')", tmp_path)
    assert refused.returncode != 0 and "network use refused by the test" in refused.stderr


def test_a_damaged_rank_file_is_refused(tmp_path: Path) -> None:
    raw = gzip.decompress((BPE / "cl100k_base.tiktoken.gz").read_bytes())
    expected = encodings.SPECS["cl100k_base"].sha256
    assert hashlib.sha256(raw).hexdigest() == expected
    damaged = tmp_path / "cl100k_base.tiktoken.gz"
    damaged.write_bytes(gzip.compress(raw.replace(b" 100\n", b" 101\n", 1)))
    with pytest.raises(encodings.BadRanks, match="cl100k_base"):
        encodings.read_ranks(damaged, expected)


@pytest.mark.parametrize(("operation", "body"), [
    ("chat/completions", {"messages": [{"role": "system", "content": "Answer in one word."},
                                       {"role": "user", "content": "Count my tokens please, all of them"}]}),
    ("completions", {"prompt": "Say this is a test, twice over"}),
    ("completions", {"prompt": ["Say this", "and that, again and again"]}),
    ("embeddings", {"input": ["one two three", "four"]}),
    ("embeddings", {"input": [[1, 2, 3], [4, 5]]}),
    ("responses", {"instructions": "Be brief.", "input": "Tell me a joke about tokens"}),
    ("responses", {"input": [{"role": "user", "content": [{"type": "input_text", "text": "Hello there"}]}]}),
])
def test_never_below_what_the_upstream_reports(emulator: AzureOpenAIEmulator, operation: str,
                                               body: dict[str, Any]) -> None:
    path = "/openai/v1/responses" if operation == "responses" else \
        f"/openai/deployments/gpt-4o-dep/{operation}?api-version=2024-10-21"
    answer = requests.post(emulator.url + path, json={**body, "model": "gpt-4o-dep"},
                           headers={"api-key": EMULATOR_KEY}, timeout=10).json()
    usage = answer["usage"]
    reported = usage.get("prompt_tokens", usage.get("input_tokens"))
    assert 0 < reported <= estimate_prompt(operation, body, ("gpt-4o", "gpt-4o-dep"))
