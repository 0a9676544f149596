"""How a test stands up a world: configuration tables in Azurite, a gateway process on a free port in
front of the sandbox's identity provider and emulator, and tokens for its callers. Also raw HTTP on a
socket, for the requests no well-behaved client would send.

This is the one place that knows how; a test module says only what is special about its world.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from sandbox.azurite import Azurite, free_port, port_open, terminate
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from shared.config.allowlist import Allowlist
from shared.config.model import Config
from shared.config.plan import plan, writes
from shared.config.schema import parse
from shared.config.store import ConfigStore
from shared.settings import load

ROOT = Path(__file__).resolve().parent.parent

AUDIENCE = "api://ai-gateway"
EMULATOR_KEY = "emulator-test-key"
EMULATOR_KEY_ENV = "GATEWAY_SECRET_EMULATOR_KEY"   # the variable the test gateways read it from
DEVELOPER: dict[str, Any] = {"groups": ["developers"]}
"""The claims of a member of `identity:developers` in the sandbox configuration."""


def unique_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


class Tables:
    """The configuration tables of one gateway, written the way `apply` writes them."""

    def __init__(self, azurite: Azurite, prefix: str) -> None:
        self.prefix = prefix
        self.env = {"GATEWAY_TABLES_CONNECTION": azurite.connection_string, "GATEWAY_TABLE_PREFIX": prefix}

    def _run(self, work: Any) -> Any:
        async def go() -> Any:
            store = ConfigStore.from_settings(load(self.env))
            try:
                return await work(store)
            finally:
                await store.aclose()

        return asyncio.run(go())

    def apply(self, doc: dict[str, Any], **settings: str) -> None:
        """Check `doc` as `apply` would under the test gateways' settings (`gateway_env`, plus
        `settings`), then write it."""
        desired = parse(doc, allowlist=Allowlist.from_settings(load(gateway_env(self, **settings))))

        async def work(store: ConfigStore) -> None:
            current, _ = await store.load()
            await store.write(writes(plan(current, desired)))

        self._run(work)

    def load(self) -> Config:
        async def work(store: ConfigStore) -> Config:
            return (await store.load())[0]

        return self._run(work)


def dev_provider(idp: DevIdentityProvider) -> dict[str, Any]:
    """The dev identity provider as a configuration entry named `dev`."""
    return {"name": "dev", "jwks_uri": idp.jwks_uri, "issuer": idp.issuer, "audiences": [AUDIENCE]}


def sandbox_config(idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, **extra: Any) -> dict[str, Any]:
    """A configuration with one provider, one account on the emulator, and two models."""
    doc: dict[str, Any] = {
        "identity_providers": [dev_provider(idp)],
        "external_identities": [{"name": "developers", "identity_provider": "dev",
                                 "claims": {"groups": "developers"}}],
        "accounts": [{"name": "emulator", "kind": "azure-openai", "endpoint": emulator.url,
                      "auth": {"type": "api-key", "key_env": EMULATOR_KEY_ENV}}],
        "models": [{"name": "gpt-4o", "targets": [{"account": "emulator", "deployment": "gpt-4o-dep"}]},
                   {"name": "embed", "targets": [{"account": "emulator", "deployment": "embed-dep"}]},
                   {"name": "secret-model", "targets": [{"account": "emulator", "deployment": "x"}]}],
        "collaborators": [{"resource": "model:gpt-4o", "principal": "identity:developers", "role": "viewer"},
                          {"resource": "model:embed", "principal": "identity:developers", "role": "viewer"}],
    }
    doc.update(extra)
    return doc


def accounts_config(idp: DevIdentityProvider, accounts: Mapping[str, str],
                    models: Mapping[str, list[tuple[str, str]]],
                    caller: str = "user:dev/alice") -> dict[str, Any]:
    """Api-key accounts (name -> endpoint) and models (name -> [(account, deployment)]), each model open
    to `caller` alone: a world of several upstreams."""
    return {
        "identity_providers": [dev_provider(idp)],
        "accounts": [{"name": name, "kind": "azure-openai", "endpoint": url,
                      "auth": {"type": "api-key", "key_env": EMULATOR_KEY_ENV}}
                     for name, url in accounts.items()],
        "models": [{"name": name, "targets": [{"account": a, "deployment": d} for a, d in targets]}
                   for name, targets in models.items()],
        "collaborators": [{"resource": f"model:{name}", "principal": caller, "role": "viewer"}
                          for name in models],
    }


HOSTS = {   # how a gateway process is served: its command, given the port
    "uvicorn": lambda port: ["-m", "shared", "serve", "--port", str(port)],
    # function_app.py through the Functions host stand-in and the real Python worker path
    "functions": lambda port: ["-m", "funchost", "--app", str(ROOT), "--port", str(port)],
}


class GatewayProcess:
    """The gateway in its own process, the real route table: `python -m shared serve` (uvicorn), or
    with `host="functions"` function_app.py under the Functions host stand-in (`python -m funchost`)."""

    def __init__(self, env: dict[str, str], log_path: Path, host: str = "uvicorn",
                 port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, *HOSTS[host](self.port)], cwd=ROOT, env=full_env,
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gateway did not start:\n{self.logs()}")
            time.sleep(0.05)

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        terminate(self.process)
        self._log.close()


def gateway_env(tables: Tables, **extra: str) -> dict[str, str]:
    return {**tables.env, "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK": "true", EMULATOR_KEY_ENV: EMULATOR_KEY,
            "GATEWAY_CONFIG_REFRESH_SECONDS": "0.5", **extra}


class Api:
    """/manage as a user sees it: one token, plain HTTP."""

    def __init__(self, url: str, idp: DevIdentityProvider, sub: str, **claims: Any) -> None:
        self.url = url
        token = idp.mint(sub, claims=claims or None, audience=AUDIENCE)
        self.client = requests.Session()
        self.client.headers["Authorization"] = f"Bearer {token}"

    def __getattr__(self, method: str) -> Callable[..., requests.Response]:
        if method not in ("get", "put", "delete", "post"):
            raise AttributeError(method)

        def call(path: str, body: Any = None, headers: dict[str, str] | None = None,
                 params: dict[str, str] | None = None) -> requests.Response:
            return self.client.request(method.upper(), f"{self.url}/manage/{path}", json=body,
                                       headers=headers, params=params, timeout=30)

        return call


# -- a world ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class World:
    """One gateway process on tables of its own, and what a test needs to talk to it."""

    gw: GatewayProcess
    tables: Tables
    idp: DevIdentityProvider
    emulator: AzureOpenAIEmulator
    env: dict[str, str]                 # the gateway's settings: what the CLI needs to act on its tables
    tokens: dict[str, str]              # subject -> a bearer token minted for it
    upstreams: dict[str, Any] = field(default_factory=dict)   # a module's own servers, by name

    @property
    def url(self) -> str:
        return self.gw.url

    @property
    def port(self) -> int:
        return self.gw.port

    @property
    def token(self) -> str:
        """The first caller's token (most worlds have one caller)."""
        return next(iter(self.tokens.values()))

    def logs(self) -> str:
        return self.gw.logs()

    def api(self, sub: str, **claims: Any) -> Api:
        """/manage as `sub` (a fresh token each time)."""
        return Api(self.url, self.idp, sub, **claims)


@contextmanager
def start_world(azurite: Azurite, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, log_dir: Path, *,
                config: dict[str, Any] | None = None, env: Mapping[str, str] | None = None,
                tokens: Mapping[str, dict[str, Any] | None] | None = None,
                upstreams: Mapping[str, Any] | None = None, host: str = "uvicorn",
                port: int | None = None) -> Iterator[World]:
    """Fresh tables holding `config` (the sandbox configuration if none), checked under the gateway's
    own settings; a gateway on `port` (a free one if none) with `env` over the test settings, served by
    `host` (see HOSTS); a token per subject of `tokens` (subject -> claims; alice the developer if none). The
    gateway stops on leaving."""
    tables = Tables(azurite, unique_prefix())
    extra = dict(env or {})
    tables.apply(sandbox_config(idp, emulator) if config is None else config, **extra)
    settings = gateway_env(tables, **extra)
    gw = GatewayProcess(settings, log_dir / "gateway.log", host, port)
    try:
        minted = {sub: idp.mint(sub, claims=claims, audience=AUDIENCE)
                  for sub, claims in ({"alice": DEVELOPER} if tokens is None else tokens).items()}
        yield World(gw, tables, idp, emulator, settings, minted, dict(upstreams or {}))
    finally:
        gw.stop()


NewWorld = Callable[..., AbstractContextManager[World]]
"""`start_world` on the session's servers (the `new_world` fixture): keywords as for `start_world`."""


@contextmanager
def emulator_running(loop: BackgroundLoop, chunk_interval: float = 0.005) -> Iterator[AzureOpenAIEmulator]:
    """An Azure OpenAI emulator of a test's (or module's) own on loopback, stopped afterwards."""
    server = AzureOpenAIEmulator(api_key=EMULATOR_KEY, chunk_interval=chunk_interval)
    loop.run(server.start())
    try:
        yield server
    finally:
        loop.run(server.stop())


# -- raw HTTP -----------------------------------------------------------------------------------------
# HTTP clients and URL libraries normalise paths, headers and framing before sending, which is exactly
# what an attacker does not do: these requests are bytes on a socket.

@dataclass(frozen=True)
class RawAnswer:
    """An answer as it came off the socket: header names lower-cased, a chunked body decoded."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def status_code(self) -> int:
        return self.status

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> dict[str, Any]:
        return dict(self.json()["error"])


def parse_answer(raw: bytes) -> RawAnswer:
    """The answer in bytes read off a socket (by `raw_request` or by a test of its own)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    headers = _headers(head)
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)[0]
    elif "content-length" in headers:
        body = body[:int(headers["content-length"])]
    return RawAnswer(int(head.split(b" ", 2)[1]), headers, body)


async def raw_request_async(port: int, request: bytes, *, read_seconds: float = 10.0) -> RawAnswer:
    """Write `request` to the gateway on `port` and read one answer: until its length or last chunk
    has come, or else until the server closes (TimeoutError after `read_seconds`)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        raw = b""
        async with asyncio.timeout(read_seconds):
            while chunk := await reader.read(65536):
                raw += chunk
                if _complete(raw):
                    break
    finally:
        writer.close()
    return parse_answer(raw)


def raw_request(port: int, request: bytes, *, read_seconds: float = 10.0) -> RawAnswer:
    """`raw_request_async` for a test without an event loop of its own."""
    return asyncio.run(raw_request_async(port, request, read_seconds=read_seconds))


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}


def _complete(raw: bytes) -> bool:
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        return False
    headers = _headers(head)
    if headers.get("transfer-encoding") == "chunked":
        return _dechunk(body)[1]
    return "content-length" in headers and len(body) >= int(headers["content-length"])


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    """A chunked body's content so far, and whether its last chunk (and trailer) has come."""
    out = b""
    while True:
        size_line, separator, rest = data.partition(b"\r\n")
        if not separator:
            return out, False
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out, rest.startswith(b"\r\n") or b"\r\n\r\n" in rest
        if len(rest) < size + 2:
            return out + rest[:size], False
        out, data = out + rest[:size], rest[size + 2:]


def sdk_client(world: World, who: str, surface: str, *, api_version: str,
               azure_ad_token: bool = False) -> Any:
    """The official openai SDK as `who` calls the gateway on one of its three surfaces: `v1` (OpenAI's
    /v1), `openai_v1` (Azure's /openai/v1) or `azure` (AzureOpenAI, the token as its api-key or, with
    `azure_ad_token`, as an Entra token)."""
    import openai

    token = world.tokens[who]
    if surface == "azure":
        key = {"azure_ad_token": token} if azure_ad_token else {"api_key": token}
        return openai.AzureOpenAI(azure_endpoint=world.url, api_version=api_version, max_retries=0, **key)
    base = world.url + {"v1": "/v1", "openai_v1": "/openai/v1"}[surface]
    return openai.OpenAI(base_url=base, api_key=token, max_retries=0)
