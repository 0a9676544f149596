"""The processes a benchmark measures, each on loopback: Azurite, the dev identity provider, the emulator,
the gateway and (optionally) the LiteLLM proxy, pinned to cores where `taskset` allows.

Core plan on a 2-core machine: the gateway (or LiteLLM) alone on core 1; the emulator, the load
generator, this orchestrator, the identity provider and Azurite share core 0. The orchestrator and the
identity provider are idle while load runs; Azurite only sees the gateway's background polls.
"""

# ruff: noqa: S603, S310

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.azurite import Azurite, free_port, port_open
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from shared.config.allowlist import Allowlist
from shared.config.plan import plan, writes
from shared.config.schema import parse
from shared.config.store import ConfigStore
from shared.settings import load

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
EMULATOR_KEY = "bench-emulator-key"
KEY_ENV = "GATEWAY_SECRET_BENCH_EMULATOR_KEY"   # the gateway reads only this prefix
AUDIENCE = "api://ai-gateway"
API_VERSION = "2024-10-21"
DEPLOYMENT = "gpt-4o-dep"
MODEL = "gpt-4o"
UPSTREAM_CORE = 0        # emulator, load generator, orchestrator, Azurite
GATEWAY_CORE = 1         # the process under test


_CORES = len(os.sched_getaffinity(0))   # read before this process pins itself


def cores() -> int:
    return _CORES


def pin_prefix(core: int | None) -> list[str]:
    """`taskset -c N` when pinning is possible (taskset present, enough cores), else nothing."""
    if core is None or shutil.which("taskset") is None or cores() <= core:
        return []
    return ["taskset", "-c", str(core)]


def pin_self(core: int) -> None:
    if cores() > core:
        os.sched_setaffinity(0, {core})


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB, summed over it and its live descendants."""
    rss = hwm = 0
    for member in tree(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            name, _, rest = line.partition(":")
            if name == "VmRSS":
                rss += int(rest.split()[0])
            elif name == "VmHWM":
                hwm += int(rest.split()[0])
    return rss, hwm


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """The same for a process and its live descendants (the Functions host stand-in serves through a
    worker process it starts)."""
    total = 0.0
    for member in tree(pid):
        try:
            total += cpu_seconds(member)
        except OSError:
            pass
    return total


def tree(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (user, nice, system, irq, softirq, steal)."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in parts[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def http_status(url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 2.0) -> int:
    request = urllib.request.Request(url, data=body, headers=headers or {},
                                     method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, urllib.error.URLError):
        return 0


def chat_body(text: str = "Say hello", *, stream: bool = False, model: str = MODEL) -> bytes:
    doc: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if stream:
        doc["stream"] = True
    return json.dumps(doc, separators=(",", ":")).encode()


LIMITS_TABLE = b"limits"
"""In the name of the table of rate-limit counters (`<prefix>limits`)."""
_REQUEST_LINE = re.compile(rb"(GET|HEAD|POST|PUT|MERGE|PATCH|DELETE) (\S+) HTTP/1\.1\r\n")


class TableRelay:
    """A TCP relay in front of Azurite that counts the HTTP requests passing through it, so a benchmark
    can show how many table reads a phase caused (none on the request path once warm): `polls` are
    reads of the configuration version entity, `reads` every other read, `writes` the rest."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.counts: Counter[str] = Counter()
        self._server: asyncio.Server | None = None

    def _count(self, data: bytes) -> None:
        for method, path in _REQUEST_LINE.findall(data):
            if LIMITS_TABLE in path:
                self.counts["limits"] += 1          # the shared rate-limit counters
            elif method in (b"GET", b"HEAD"):
                self.counts["polls" if b"RowKey='version'" in path else "reads"] += 1
            else:
                self.counts["writes"] += 1

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, count: bool) -> None:
            try:
                while data := await src.read(65536):
                    if count:
                        self._count(data)
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))


def config_document(idp: DevIdentityProvider, emulator_url: str) -> dict[str, Any]:
    return {
        "identity_providers": [{"name": "dev", "jwks_uri": idp.jwks_uri, "issuer": idp.issuer,
                                "audiences": [AUDIENCE]}],
        "external_identities": [{"name": "developers", "identity_provider": "dev",
                                 "claims": {"groups": "developers"}}],
        "accounts": [{"name": "emulator", "kind": "azure-openai", "endpoint": emulator_url,
                      "auth": {"type": "api-key", "key_env": KEY_ENV}}],
        "models": [{"name": MODEL, "targets": [{"account": "emulator", "deployment": DEPLOYMENT}]},
                   {"name": "embed", "targets": [{"account": "emulator", "deployment": "embed-dep"}]}],
        "collaborators": [
            {"resource": f"model:{MODEL}", "principal": "identity:developers", "role": "viewer"},
            {"resource": "model:embed", "principal": "identity:developers", "role": "viewer"}],
    }


BENCH_RULE: dict[str, Any] = {
    "name": "bench", "when": {"models": {"in": [MODEL]}}, "per": ["user"],
    "limits": [{"requests": 10_000_000, "per": "minute"}, {"tokens": 1_000_000_000, "per": "minute"}]}
"""One active rule on the benchmarked model, per user, that never refuses: what it costs to admit."""


async def apply_config(env: dict[str, str], doc: dict[str, Any]) -> None:
    """Make the tables equal `doc`, the way `python -m shared apply` does under the bench gateways'
    settings (the emulator is plain http on loopback)."""
    settings = load({**env, "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK": "true"})
    store = ConfigStore.from_settings(settings)
    try:
        current, _ = await store.load()
        await store.write(writes(plan(current, parse(doc, allowlist=Allowlist.from_settings(settings)))))
    finally:
        await store.aclose()


@dataclass
class Proc:
    """A child process with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str
    started: float
    ready_health: float | None = None      # seconds from spawn to /health (or port) answering
    ready_first: float | None = None       # seconds from spawn to the first proxied 200
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def logs(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def stop(self, timeout: float = 10, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def spawn(name: str, argv: list[str], *, env: dict[str, str], core: int | None, out: Path,
          url: str, cwd: Path = ROOT) -> Proc:
    log_path = out / f"{name}.log"
    log = log_path.open("wb")
    started = time.perf_counter()
    process = subprocess.Popen([*pin_prefix(core), *argv], cwd=cwd, env={**os.environ, **env,
                               "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return Proc(name=name, process=process, log_path=log_path, url=url, started=started)


def wait_until(proc: Proc, check: Any, timeout: float, what: str) -> float:
    """Poll `check()` every 5 ms; seconds from the process's spawn to the first success."""
    deadline = time.monotonic() + timeout
    while not check():
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.process.returncode}) before {what}:\n"
                               f"{proc.logs()}")
        if time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"{proc.name}: no {what} within {timeout} s:\n{proc.logs()}")
        time.sleep(0.005)
    return time.perf_counter() - proc.started


class World:
    """Everything but the load generator; `close()` stops what it started."""

    def __init__(self, out: Path, *, chunk_interval: float, refresh_seconds: float = 10.0,
                 log_level: str = "INFO", extra_env: dict[str, str] | None = None) -> None:
        self.extra_env = extra_env or {}
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.chunk_interval = chunk_interval
        self.refresh_seconds = refresh_seconds
        self.log_level = log_level
        self.prefix = "bench" + uuid.uuid4().hex[:10]
        self.loop = BackgroundLoop().__enter__()
        self.azurite: Azurite | None = None
        self.relay: TableRelay | None = None
        self.idp = DevIdentityProvider()
        self.emulator: Proc | None = None
        self.procs: list[Proc] = []

    # -- infrastructure ---------------------------------------------------------------------------

    def start(self) -> World:
        self.azurite = Azurite(self.out / f"azurite-{self.prefix}").start()
        self.relay = TableRelay(self.azurite.table_port)
        self.loop.run(self.relay.start())
        self.loop.run(self.idp.start())
        port = free_port()
        self.emulator = spawn("emulator", [sys.executable, "-m", "sandbox.emulator", "--port", str(port),
                                           "--api-key", EMULATOR_KEY, "--chunk-interval",
                                           str(self.chunk_interval)],
                              env={}, core=UPSTREAM_CORE, out=self.out, url=f"http://127.0.0.1:{port}")
        self.procs.append(self.emulator)
        wait_until(self.emulator, lambda: port_open(port), 30, "a listening port")
        asyncio.run(apply_config(self.tables_env(), config_document(self.idp, self.emulator.url)))
        return self

    def with_rule(self) -> dict[str, str]:
        """Tables of their own holding the same configuration plus BENCH_RULE: the settings that
        point a gateway at them."""
        env = {**self.tables_env(), "GATEWAY_TABLE_PREFIX": self.prefix + "rule"}
        assert self.emulator is not None
        doc = {**config_document(self.idp, self.emulator.url), "rate_limits": [BENCH_RULE]}
        asyncio.run(apply_config(env, doc))
        return {"GATEWAY_TABLE_PREFIX": env["GATEWAY_TABLE_PREFIX"]}

    def tables_env(self) -> dict[str, str]:
        assert self.azurite is not None and self.relay is not None
        connection = self.azurite.connection_string.replace(f":{self.azurite.table_port}/",
                                                            f":{self.relay.port}/")
        return {"GATEWAY_TABLES_CONNECTION": connection, "GATEWAY_TABLE_PREFIX": self.prefix}

    def table_requests(self) -> Counter[str]:
        """HTTP requests the gateways sent to the tables so far, by kind (polls, reads, writes)."""
        assert self.relay is not None
        return Counter(self.relay.counts)

    def stop_azurite(self) -> None:
        assert self.azurite is not None
        self.azurite.stop()

    def restart_azurite(self) -> None:
        assert self.azurite is not None
        self.azurite.start()

    def mint(self, n: int = 1, *, sub: str = "bench-user", expires_in: int = 3600) -> list[str]:
        return [self.idp.mint(f"{sub}-{i}", claims={"groups": ["developers"]}, audience=AUDIENCE,
                              expires_in=expires_in) for i in range(n)]

    # -- the processes under test -----------------------------------------------------------------

    def gateway_env(self) -> dict[str, str]:
        return {**self.tables_env(), "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK": "true", KEY_ENV: EMULATOR_KEY,
                "GATEWAY_CONFIG_REFRESH_SECONDS": str(self.refresh_seconds),
                "GATEWAY_LOG_LEVEL": self.log_level, **self.extra_env}

    def start_gateway(self, token: str, *, name: str = "gateway", argv: list[str] | None = None,
                      env: dict[str, str] | None = None, cwd: Path = ROOT) -> Proc:
        """`python -m shared serve` pinned to the gateway core; records the time to /health and to the
        first proxied answer (configuration loaded, keys fetched, upstream reached)."""
        port = free_port()
        command = argv or [sys.executable, "-m", "shared", "serve", "--port", str(port)]
        if argv is not None:
            command = [*argv, "--port", str(port)]
        proc = spawn(name, command, env={**self.gateway_env(), **(env or {})}, core=GATEWAY_CORE,
                     out=self.out, url=f"http://127.0.0.1:{port}", cwd=cwd)
        self.procs.append(proc)
        proc.ready_health = wait_until(proc, lambda: http_status(proc.url + "/health") == 200, 60,
                                       "/health answer")
        body = chat_body()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        proc.ready_first = wait_until(
            proc, lambda: http_status(proc.url + "/v1/chat/completions", body=body, headers=headers) == 200,
            60, "proxied answer")
        return proc

    def start_litellm(self, python: Path, master_key: str) -> Proc:
        """The LiteLLM proxy (one worker) with an `azure/` model on the same emulator."""
        assert self.emulator is not None
        port = free_port()
        config = self.out / "litellm.yaml"
        config.write_text(json.dumps({
            "model_list": [{"model_name": MODEL, "litellm_params": {
                "model": f"azure/{DEPLOYMENT}", "api_base": self.emulator.url, "api_key": EMULATOR_KEY,
                "api_version": API_VERSION}, "model_info": {"base_model": "azure/gpt-4o"}}],
            "general_settings": {"master_key": master_key},
            "litellm_settings": {"telemetry": False, "drop_params": True},
        }, indent=2))
        env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
               "LITELLM_LOG": "ERROR", "NO_PROXY": "*", "no_proxy": "*", "DISABLE_SCHEMA_UPDATE": "True"}
        litellm = python.parent / "litellm"
        proc = spawn("litellm", [str(litellm), "--config", str(config), "--host", "127.0.0.1", "--port",
                                 str(port), "--num_workers", "1"],
                     env=env, core=GATEWAY_CORE, out=self.out, url=f"http://127.0.0.1:{port}")
        self.procs.append(proc)
        proc.ready_health = wait_until(proc, lambda: port_open(port), 120, "a listening port")
        body = chat_body()
        headers = {"Authorization": f"Bearer {master_key}", "Content-Type": "application/json"}
        proc.ready_first = wait_until(
            proc, lambda: http_status(proc.url + "/v1/chat/completions", body=body, headers=headers,
                                      timeout=10) == 200, 120, "proxied answer")
        return proc

    def pids(self) -> list[int]:
        """This process, Azurite and every live child started here."""
        pids = [os.getpid(), *(member for p in self.procs if p.alive() for member in tree(p.pid))]
        if self.azurite is not None and self.azurite.process is not None:
            pids.append(self.azurite.process.pid)
        return pids

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        if self.relay is not None:
            self.loop.run(self.relay.stop())
        self.loop.run(self.idp.stop())
        self.loop.close()
        if self.azurite is not None:
            self.azurite.stop()
            self.azurite.wipe()
