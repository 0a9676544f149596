"""What every command prints, through the real entry point: tables and ISO-8601 times for people, one
JSON document with `--output json` (stdout holds nothing else), errors on stderr with exit 2; `usage`
by time (ISO-8601 or a duration) and grouped; and the target a command names, without its key."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables.aio import TableServiceClient

from sandbox.azurite import Azurite
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from shared.cli.target import target_of
from shared.settings import load
from shared.upstream.usage import UsageRecorder
from tests.harness import AUDIENCE, DEVELOPER, Tables, gateway_env, sandbox_config
from tests.test_cli_apply import cli, write

ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
def env(tables: Tables, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> dict[str, str]:
    tables.apply(sandbox_config(idp, emulator))
    return gateway_env(tables)


@pytest.fixture
def file(tmp_path: Path, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> str:
    return write(tmp_path, sandbox_config(idp, emulator, workspaces=[{"name": "research"}]))


@pytest.mark.parametrize(("args", "code", "check"), [
    (("diff", "-f", "{file}"), 1, lambda d: d["changes"][0]["name"] == "research" and d["pending"]),
    (("apply", "-f", "{file}"), 0, lambda d: d["applied"] and d["target"]["account"] == "devstoreaccount1"),
    (("export",), 0, lambda d: [m["name"] for m in d["models"]] == ["embed", "gpt-4o", "secret-model"]),
    (("prewarm",), 0, lambda d: d["ok"] and d["accounts"]["emulator"]["ok"]),
    (("status",), 0, lambda d: d["identity_providers"]["dev"]["usable"]),
    (("explain", "--token", "{token}", "--resource", "model:gpt-4o"), 0, lambda d: d["allowed"]),
    (("usage",), 0, lambda d: d == []),
    (("audit",), 0, lambda d: {e["kind"] for e in d} >= {"models", "collaborators"}),
], ids=lambda v: v[0] if isinstance(v, tuple) else None)
def test_output_json_is_one_document_on_stdout(env: dict[str, str], file: str, idp: DevIdentityProvider,
                                               args: tuple[str, ...], code: int, check: Any) -> None:
    token = idp.mint("alice", claims=DEVELOPER, audience=AUDIENCE)
    result = cli(env, *(a.format(file=file, token=token) for a in args), "--output", "json")
    assert result.returncode == code, result.stderr
    assert check(json.loads(result.stdout))


def test_people_get_tables_and_iso_times(env: dict[str, str], idp: DevIdentityProvider) -> None:
    prewarm = cli(env, "prewarm")
    assert prewarm.returncode == 0, prewarm.stderr
    assert prewarm.stderr.startswith("target: devstoreaccount1 (127.0.0.1:")     # it writes the health table
    assert prewarm.stdout.startswith("prewarm: OK (started ") and ISO_TIME.search(prewarm.stdout)
    assert ["emulator", "ok", "-"] in [line.split() for line in prewarm.stdout.splitlines()]

    token = idp.mint("alice", claims=DEVELOPER, audience=AUDIENCE)
    explain = cli(env, "explain", "--token", "-", "--resource", "model:gpt-4o", stdin=token)
    assert explain.returncode == 0, explain.stderr
    assert "allowed: yes" in explain.stdout and "role: viewer via model:gpt-4o" in explain.stdout
    assert ["signature", "pass"] == next(line.split()[:2] for line in explain.stdout.splitlines()
                                         if line.startswith("signature"))
    assert explain.stderr == ""                     # quiet on success apart from the result

    audit = cli(env, "audit")
    header, *rows = audit.stdout.splitlines()
    assert header.split() == ["at", "actor", "change"] and rows
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", row) for row in rows)


def test_errors_go_to_stderr_with_exit_2_and_leave_stdout_empty(env: dict[str, str]) -> None:
    for args in (("audit", "--since", "yesterday-ish"), ("usage", "--by", "colour"),
                 ("apply", "-f", "/nonexistent.yaml", "--output", "json"), ("export", "--output", "xml")):
        result = cli(env, *args)
        assert (result.returncode, result.stdout) == (2, ""), args
        assert "error" in result.stderr


@pytest.fixture
def usage_tables(azurite: Azurite, tables: Tables) -> Tables:
    """Counts from two callers on two models, written as a gateway process writes them."""
    async def record() -> None:
        recorder = UsageRecorder(lambda: TableServiceClient.from_connection_string(azurite.connection_string),
                                 tables.prefix)
        for principal, model, tokens in (("user:dev/alice", "gpt-4o", 10), ("user:dev/alice", "embed", 3),
                                         ("user:dev/bob", "gpt-4o", 5)):
            recorder.record(principal, model, {"prompt_tokens": tokens, "completion_tokens": 0,
                                               "total_tokens": tokens})
        await recorder.aclose()

    asyncio.run(record())
    return tables


@pytest.mark.parametrize("since", ["1h", "30m", "7d", "2020-01-31", "2020-01-31T09:00Z",
                                   "2020-01-31T09:00:00+02:00"])
def test_usage_since_takes_iso_times_and_durations(usage_tables: Tables, since: str) -> None:
    result = cli(usage_tables.env, "usage", "--since", since, "--output", "json")
    assert result.returncode == 0, result.stderr
    assert sum(row["requests"] for row in json.loads(result.stdout)) == 3


@pytest.mark.parametrize(("since", "code", "says"), [
    ("2999-01-01", 0, "no usage recorded"),
    ("yesterday", 2, "use an ISO-8601 date or time (YYYY-MM-DD"),
    ("5y", 2, "or a duration back from now (30m, 12h, 7d)"),
])
def test_usage_since_refuses_what_is_not_a_time(usage_tables: Tables, since: str, code: int,
                                                says: str) -> None:
    result = cli(usage_tables.env, "usage", "--since", since)
    assert result.returncode == code
    assert says in (result.stdout if code == 0 else result.stderr)


@pytest.mark.parametrize(("by", "expect"), [
    ("user", {("user:dev/alice",): 13, ("user:dev/bob",): 5}),
    ("model", {("embed",): 3, ("gpt-4o",): 15}),
    ("model,user", {("embed", "user:dev/alice"): 3, ("gpt-4o", "user:dev/alice"): 10,
                    ("gpt-4o", "user:dev/bob"): 5}),
])
def test_usage_groups_by_what_is_asked(usage_tables: Tables, by: str,
                                       expect: dict[tuple[str, ...], int]) -> None:
    result = cli(usage_tables.env, "usage", "--by", by, "--output", "json")
    assert result.returncode == 0, result.stderr
    keys = ["principal" if name == "user" else name for name in by.split(",")]
    assert {tuple(row[k] for k in keys): row["total_tokens"] for row in json.loads(result.stdout)} == expect
    table = cli(usage_tables.env, "usage", "--by", by)
    assert table.stdout.splitlines()[0].split() == [*keys, "requests", "prompt_tokens", "cached_tokens",
                                                    "completion_tokens", "total_tokens", "cost_usd",
                                                    "unpriced"]   # embed has no price


@pytest.mark.parametrize(("settings", "line"), [
    ({"GATEWAY_TABLES_CONNECTION": "UseDevelopmentStorage=true"},
     "target: devstoreaccount1 (127.0.0.1:10002), tables gw*"),
    ({"GATEWAY_TABLES_CONNECTION": "DefaultEndpointsProtocol=https;AccountName=stprod;AccountKey=c2VjcmV0;"
                                   "EndpointSuffix=core.windows.net", "GATEWAY_TABLE_PREFIX": "prod"},
     "target: stprod (stprod.table.core.windows.net), tables prod*"),
    ({"GATEWAY_TABLES_CONNECTION": "TableEndpoint=https://stsas.table.core.windows.net/;"
                                   "SharedAccessSignature=sv=2024&sig=c2VjcmV0"},
     "target: stsas (stsas.table.core.windows.net), tables gw*"),
    ({"GATEWAY_TABLES_ENDPOINT": "https://stexample.table.core.usgovcloudapi.net/"},
     "target: stexample (stexample.table.core.usgovcloudapi.net), tables gw*"),
    ({"GATEWAY_TABLES_ENDPOINT": "http://127.0.0.1:10002/devstoreaccount1"},
     "target: devstoreaccount1 (127.0.0.1:10002), tables gw*"),
], ids=["azurite", "connection-string", "sas", "endpoint", "emulator-endpoint"])
def test_the_target_names_the_account_and_prefix_never_the_credential(settings: dict[str, str],
                                                                      line: str) -> None:
    shown = target_of(load(settings)).line()
    assert shown == line
    assert "c2VjcmV0" not in shown and "sig=" not in shown
