"""`make bench`: one run, one table. Straight to the emulator, through the gateway and (BENCH_LITELLM=1)
through the LiteLLM proxy, rounds interleaved, medians of rounds; plus token verification on one core.

Every figure comes from loopback traffic bounded in count and time. Knobs (environment, defaults in
`Options`): BENCH_ROUNDS, BENCH_SEQ, BENCH_RATE_SECONDS, BENCH_CONCURRENCY, BENCH_STREAMS_1,
BENCH_STREAMS_16, BENCH_CHUNK_INTERVAL, BENCH_MEMORY_REQUESTS, BENCH_READY_STARTS, BENCH_AUTH_TOKENS,
BENCH_AUTH_CACHED, BENCH_HTTP_AUTH, BENCH_TOKEN_POOL, BENCH_LITELLM, BENCH_LITELLM_PYTHON, BENCH_OUT,
BENCH_LOG_LEVEL, BENCH_FAST_SERVER, BENCH_VARIANTS.
"""

# ruff: noqa: S603, S607

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .world import (
    API_VERSION,
    DEPLOYMENT,
    EMULATOR_KEY,
    GATEWAY_CORE,
    OUT,
    ROOT,
    UPSTREAM_CORE,
    World,
    chat_body,
    cores,
    cpu_seconds,
    machine_busy_seconds,
    pin_prefix,
    pin_self,
    rss_kib,
    tree_cpu_seconds,
)

LITELLM_MASTER_KEY = "sk-bench-master"


@dataclass
class Options:
    rounds: int = 5                 # interleaved rounds; figures are medians of rounds
    seq: int = 300                  # requests one at a time, per round and target
    rate_seconds: float = 2.5       # length of the concurrent phase, per round and target
    concurrency: int = 32
    streams_1: int = 20             # streams one client runs per round
    streams_16: int = 5             # streams each of the 16 clients runs per round
    stream_clients: int = 16
    chunk_interval: float = 0.01    # the emulator's fixed cadence between stream events (s)
    memory_requests: int = 100_000  # requests through the gateway before resident memory is read
    ready_starts: int = 3           # gateway starts timed (median)
    auth_tokens: int = 1000         # distinct tokens verified uncached in process
    auth_cached: int = 50_000       # cached verifications in process
    http_auth: int = 200            # requests per round for the HTTP-level auth step
    token_pool: int = 64            # distinct (cached) tokens rotated in concurrent phases
    litellm: bool = False
    litellm_python: str = str(ROOT / ".venv-litellm" / "bin" / "python")
    out: str = str(OUT)             # where logs, results-*.json and last.txt go
    log_level: str = "INFO"         # the gateway's GATEWAY_LOG_LEVEL (INFO logs one line per request)
    fast_server: bool = False       # A/B: httptools + uvloop from .venv-bench on the gateway's PYTHONPATH
    variants: str = ""              # extra gateways measured in the same rounds: "fast", "patch" (VARIANTS)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Options:
        env = dict(os.environ if env is None else env)
        options = cls()
        for f in fields(cls):
            raw = env.get("BENCH_" + f.name.upper())
            if raw is None or raw == "":
                continue
            default = getattr(options, f.name)
            if isinstance(default, bool):
                value: Any = raw.strip().lower() in ("1", "true", "yes")
            elif isinstance(default, int):
                value = int(float(raw))
            elif isinstance(default, float):
                value = float(raw)
            else:
                value = raw
            setattr(options, f.name, value)
        return options


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if v == v]
    return statistics.median(clean) if clean else float("nan")


class LoadGen:
    """The aiohttp load generator process (bench/load.py), pinned beside the emulator."""

    def __init__(self, out: Path) -> None:
        self._log = (out / "loadgen.log").open("ab")
        self.process = subprocess.Popen(
            [*pin_prefix(UPSTREAM_CORE), sys.executable, "-m", "bench.load"], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log)

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps(job) + "\n").encode())
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the load generator exited; see bench/out/loadgen.log")
        result: dict[str, Any] = json.loads(line)
        if "failed" in result:
            raise RuntimeError(f"load job {job['op']} failed: {result['failed']}")
        return result

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@dataclass
class Target:
    name: str
    url: str                        # base URL
    path: str                       # chat completions path (with query)
    headers: dict[str, str]
    pid: int | None = None
    seq_tokens: list[str] = field(default_factory=list)
    pool_tokens: list[str] = field(default_factory=list)

    def job(self, op: str, *, stream: bool = False, pool: bool = False, **extra: Any) -> dict[str, Any]:
        tokens = self.pool_tokens if pool else self.seq_tokens
        return {"op": op, "url": self.url + self.path, "body": chat_body(stream=stream).decode(),
                "headers": {"Content-Type": "application/json", **self.headers}, "tokens": tokens, **extra}


@dataclass
class RoundFigures:
    lat_p50: float
    lat_p99: float
    rps: float
    rate_p99: float
    rate_cpu: float | None          # share of one core the target process used in the rate phase
    ttft1_p50: float
    ttft1_p99: float
    ttft16_p50: float
    ttft16_p99: float
    gap1_p99: float
    gap16_p99: float
    coalesced1: float               # share of gaps under half the cadence
    coalesced16: float
    digests: dict[str, int]
    requests: int
    errors: dict[str, int]
    foreign: float = 0.0            # share of a core other processes on the machine used meanwhile


def _merge_errors(*results: dict[str, Any]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for result in results:
        for name, count in result.get("errors", {}).items():
            merged[name] = merged.get(name, 0) + count
    return merged


class ForeignProbe:
    """CPU that processes other than ours used on the machine (the machine may be shared)."""

    def __init__(self, ours: list[int]) -> None:
        self.ours = ours
        self._mark = self._now()

    def _now(self) -> tuple[float, float, float]:
        return time.monotonic(), machine_busy_seconds(), _cpu_of(self.ours)

    def share(self) -> float:
        """Share of one core used by others since the last call."""
        (t0, busy0, ours0), (t1, busy1, ours1) = self._mark, self._now()
        self._mark = (t1, busy1, ours1)
        return max(0.0, ((busy1 - busy0) - (ours1 - ours0)) / max(t1 - t0, 1e-9))


def measure_round(load: LoadGen, target: Target, options: Options,
                  probe: ForeignProbe | None = None) -> RoundFigures:
    if probe is not None:
        probe.share()
    seq = load.run(target.job("seq", n=options.seq))
    cpu_before = tree_cpu_seconds(target.pid) if target.pid else None
    rate = load.run(target.job("rate", pool=True, concurrency=options.concurrency,
                               seconds=options.rate_seconds))
    rate_cpu = ((tree_cpu_seconds(target.pid) - cpu_before) / rate["elapsed"]
                if target.pid and cpu_before is not None else None)
    s1 = load.run(target.job("stream", stream=True, clients=1, per_client=options.streams_1))
    # The clients' first requests are spread over one stream's length (~12 events at the cadence), so
    # the phase measures 16 streams in flight, not 16 requests arriving in the same millisecond.
    s16 = load.run(target.job("stream", stream=True, pool=True, clients=options.stream_clients,
                              per_client=options.streams_16, spread=12 * options.chunk_interval))
    half = options.chunk_interval * 1000 / 2

    def coalesced(gaps: list[float]) -> float:
        return sum(1 for g in gaps if g < half) / len(gaps) * 100 if gaps else float("nan")

    digests: dict[str, int] = {}
    for result in (s1, s16):
        for digest, count in result["digests"].items():
            digests[digest] = digests.get(digest, 0) + count
    return RoundFigures(
        lat_p50=pct(seq["lat"], 50), lat_p99=pct(seq["lat"], 99),
        rps=rate["count"] / rate["elapsed"], rate_p99=pct(rate["lat"], 99), rate_cpu=rate_cpu,
        ttft1_p50=pct(s1["ttft"], 50), ttft1_p99=pct(s1["ttft"], 99),
        ttft16_p50=pct(s16["ttft"], 50), ttft16_p99=pct(s16["ttft"], 99),
        gap1_p99=pct(s1["gaps"], 99), gap16_p99=pct(s16["gaps"], 99),
        coalesced1=coalesced(s1["gaps"]), coalesced16=coalesced(s16["gaps"]), digests=digests,
        requests=len(seq["lat"]) + rate["count"] + len(s1["ttft"]) + len(s16["ttft"]),
        errors=_merge_errors(seq, rate, s1, s16), foreign=probe.share() if probe is not None else 0.0)


def http_auth_round(load: LoadGen, gateway: Target, fresh: list[str], n: int) -> dict[str, float]:
    """The auth step as a client sees it: /health (no token) against /v1/models (token checked, model
    list filtered by role), with one cached token and with tokens never seen before."""
    base = {"url": gateway.url, "method": "GET", "body": None, "headers": {}}
    health = load.run({**base, "op": "seq", "url": gateway.url + "/health", "n": n})
    cached = load.run({**base, "op": "seq", "url": gateway.url + "/v1/models", "n": n,
                       "tokens": gateway.seq_tokens})
    uncached = load.run({**base, "op": "seq", "url": gateway.url + "/v1/models", "n": len(fresh),
                         "tokens": fresh})
    errors = _merge_errors(health, cached, uncached)
    if errors:
        raise RuntimeError(f"HTTP auth phase had errors: {errors}")
    return {"health_p50": pct(health["lat"], 50), "cached_p50": pct(cached["lat"], 50),
            "uncached_p50": pct(uncached["lat"], 50), "requests": n * 2 + len(fresh)}


def _cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            pass
    return total


def source_state() -> str:
    """The commit measured and whether the work tree differed from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "shared", "function_app.py"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}{' + uncommitted changes in shared/' if dirty else ''}"


def run_auth_micro(options: Options) -> dict[str, Any]:
    out = subprocess.run([*pin_prefix(GATEWAY_CORE), sys.executable, "-m", "bench.auth", "--tokens",
                          str(options.auth_tokens), "--cached", str(options.auth_cached)],
                         cwd=ROOT, capture_output=True, check=True, timeout=300)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": str(cores()), "python": platform.python_version(),
            "kernel": platform.release(), "pinned": "yes" if pin_prefix(GATEWAY_CORE) else "no"}


# -- the run ----------------------------------------------------------------------------------------

VARIANTS = {
    "fast": "httptools + uvloop (from .venv-bench) for the same code",
    "patch": "every bench/patches/*.diff applied to a copy of shared/",
    "base": "shared/ as of git revision BENCH_BASE (default: the previous commit), for before/after",
    "rule": "the same code with one active rate limit (requests and tokens per minute, per user, never "
            "refusing) on the benchmarked model",
    "funchost": "function_app.py under the Functions host stand-in (python -m funchost) and the real "
                "Python worker: the production request path (CPU and memory: host and worker together)",
}
VARIANT_ARGV = {"funchost": [sys.executable, "-m", "funchost", "--app", str(ROOT)]}
"""Variants served by another command than `python -m shared serve` (the port is appended)."""


def bench_site_packages() -> Path:
    site = next((ROOT / ".venv-bench" / "lib").glob("python3*/site-packages"), None)
    if site is None:
        raise SystemExit("this needs .venv-bench: run `make bench-fast-server`")
    return site


def patched_tree(out: Path) -> Path:
    """A copy of the gateway's code with bench/patches/*.diff applied (the proposed fixes, measured)."""
    tree = (out / "patched").resolve()
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    shutil.copytree(ROOT / "shared", tree / "shared", ignore=shutil.ignore_patterns("__pycache__"))
    # Inside the project's repository `git apply` would resolve paths from the repository's root and
    # silently skip them all; the ceiling makes it treat the copy as a plain directory.
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tree.parent)}
    for diff in sorted((ROOT / "bench" / "patches").glob("*.diff")):
        done = subprocess.run(["git", "apply", "--verbose", "--whitespace=nowarn", str(diff)], cwd=tree,
                              env=env, capture_output=True, text=True, timeout=60)
        files = diff.read_text().count("\ndiff --git ") + diff.read_text().startswith("diff --git ")
        applied = (done.stdout + done.stderr).count("Applied patch")
        if done.returncode or applied != files:
            raise SystemExit(f"{diff.name} no longer applies to shared/ ({applied} of {files} files): "
                             f"{done.stderr.strip()}")
    return tree


def base_tree(out: Path, revision: str) -> Path:
    """shared/ as it was at `revision`, extracted beside the run: the "before" of a before/after."""
    tree = (out / "base").resolve()
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", revision, "shared"], cwd=ROOT, capture_output=True,
                             timeout=60, check=False)
    if archive.returncode:
        raise SystemExit(f"BENCH_BASE={revision}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True, timeout=60)
    return tree


def variant_launch(name: str, out: Path) -> tuple[dict[str, str], Path]:
    if name == "base":
        tree = base_tree(out, os.environ.get("BENCH_BASE", "HEAD~1"))
        return {"PYTHONPATH": str(tree)}, tree
    if name == "fast":
        return {"PYTHONPATH": str(bench_site_packages())}, ROOT
    if name == "patch":
        tree = patched_tree(out)
        return {"PYTHONPATH": f"{tree}{os.pathsep}{bench_site_packages()}"}, tree
    if name == "rule":
        return {}, ROOT          # its tables (with the rule) are made once the world is up
    if name == "funchost":
        return {}, ROOT          # another command: VARIANT_ARGV
    raise SystemExit(f"unknown variant {name!r}: one of {', '.join(VARIANTS)}")


def run(options: Options, out: Path = OUT) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    pin_self(UPSTREAM_CORE)
    started = time.perf_counter()
    variants = [v.strip() for v in options.variants.split(",") if v.strip()]
    launches = {v: variant_launch(v, out) for v in variants}
    results: dict[str, Any] = {"options": asdict(options), "machine": machine(), "source": source_state(),
                               "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "variants": variants}
    progress("token verification on one core (in process)")
    results["auth"] = run_auth_micro(options)

    extra_env = {"PYTHONPATH": str(bench_site_packages())} if options.fast_server else {}
    world = World(out, chunk_interval=options.chunk_interval, log_level=options.log_level,
                  extra_env=extra_env).start()
    load: LoadGen | None = None
    try:
        seq_token = world.mint(1, sub="seq")
        pool = world.mint(options.token_pool, sub="pool")
        fresh_n = max(1, options.http_auth // 2)
        fresh = world.mint(fresh_n * options.rounds + 20, sub="fresh")

        progress(f"gateway start-up x{options.ready_starts}")
        starts = []
        gateway_proc = None
        for i in range(options.ready_starts):
            if gateway_proc is not None:
                gateway_proc.stop()
            gateway_proc = world.start_gateway(seq_token[0], name=f"gateway-{i}")
            starts.append((gateway_proc.ready_health, gateway_proc.ready_first))
        assert gateway_proc is not None
        results["ready"] = {"gateway": {"health": [s[0] for s in starts], "first": [s[1] for s in starts]}}

        assert world.emulator is not None
        direct = Target("direct", world.emulator.url,
                        f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={API_VERSION}",
                        {"api-key": EMULATOR_KEY})
        gateway = Target("gateway", gateway_proc.url, "/v1/chat/completions", {}, pid=gateway_proc.pid,
                         seq_tokens=seq_token, pool_tokens=pool)
        targets = [direct, gateway]
        for variant, (env, cwd) in launches.items():
            progress(f"gateway+{variant} start-up")
            if variant == "rule":
                env = {**env, **world.with_rule()}
            proc = world.start_gateway(seq_token[0], name=f"gateway-{variant}", env=env, cwd=cwd,
                                       argv=VARIANT_ARGV.get(variant))
            results["ready"][f"gateway+{variant}"] = {"health": [proc.ready_health],
                                                      "first": [proc.ready_first]}
            targets.append(Target(f"gateway+{variant}", proc.url, "/v1/chat/completions", {}, pid=proc.pid,
                                  seq_tokens=seq_token, pool_tokens=pool))
        if options.litellm:
            progress("LiteLLM proxy start-up")
            litellm_proc = world.start_litellm(Path(options.litellm_python), LITELLM_MASTER_KEY)
            results["litellm_ready"] = {"health": litellm_proc.ready_health,
                                        "first": litellm_proc.ready_first,
                                        "version": litellm_version(Path(options.litellm_python))}
            targets.append(Target("litellm", litellm_proc.url, "/v1/chat/completions",
                                  {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"}, pid=litellm_proc.pid))

        load = LoadGen(out)
        progress("warm-up")
        for target in targets:
            load.run(target.job("bulk", pool=True, count=max(len(pool), 50), concurrency=8))
        gateway_requests = max(len(pool), 50) + options.ready_starts
        rss_warm = rss_kib(gateway.pid or 0)[0]
        fetches_warm, table_warm, warm_at = world.idp.fetch_count, world.table_requests(), time.monotonic()
        ours = [*world.pids(), load.process.pid]
        busy_before, ours_before = machine_busy_seconds(), _cpu_of(ours)
        probe = ForeignProbe(ours)

        rounds: dict[str, list[RoundFigures]] = {t.name: [] for t in targets}
        http_auth: list[dict[str, float]] = []
        for r in range(options.rounds):
            order = targets[r % len(targets):] + targets[:r % len(targets)]
            progress(f"round {r + 1}/{options.rounds}: " + ", ".join(t.name for t in order))
            for target in order:
                figures = measure_round(load, target, options, probe)
                rounds[target.name].append(figures)
                if target is gateway:
                    gateway_requests += figures.requests
                    batch = fresh[r * fresh_n:(r + 1) * fresh_n]
                    http_auth.append(http_auth_round(load, gateway, batch, options.http_auth))
                    gateway_requests += http_auth[-1]["requests"]
        results["key_fetches_once_warm"] = world.idp.fetch_count - fetches_warm
        window = time.monotonic() - warm_at
        results["table_requests_once_warm"] = dict(world.table_requests() - table_warm)
        results["table_window_seconds"] = window
        foreign = (machine_busy_seconds() - busy_before) - (_cpu_of(ours) - ours_before)
        results["foreign_cpu"] = max(0.0, foreign / window)
        results["refresh_seconds"] = world.refresh_seconds

        progress("Azurite stopped: requests must still succeed")
        world.stop_azurite()
        try:
            outage = [load.run(gateway.job("seq", n=100)),
                      load.run({**gateway.job("seq", n=20), "tokens": fresh[-20:]}),
                      load.run(gateway.job("stream", stream=True, clients=4, per_client=2))]
        finally:
            world.restart_azurite()
        ok = len(outage[0]["lat"]) + len(outage[1]["lat"]) + len(outage[2]["ttft"])
        results["azurite_stopped"] = {"ok": ok, "sent": 100 + 20 + 8, "errors": _merge_errors(*outage)}
        gateway_requests += 128

        remaining = max(0, options.memory_requests - gateway_requests)
        progress(f"memory: {remaining} more requests through the gateway "
                 f"({gateway_requests} sent so far, {options.memory_requests} in all)")
        if remaining:
            bulk = load.run(gateway.job("bulk", pool=True, count=remaining, concurrency=options.concurrency,
                                        max_seconds=300))
            gateway_requests += bulk["count"]
            results["bulk"] = {"count": bulk["count"], "rps": bulk["count"] / bulk["elapsed"],
                               "errors": bulk["errors"]}
        rss, hwm = rss_kib(gateway.pid or 0)
        results["memory"] = {"gateway": {"requests": gateway_requests, "rss_kib": rss, "hwm_kib": hwm,
                                         "rss_warm_kib": rss_warm}}
        for target in targets[2:]:
            results["memory"][target.name] = {"rss_kib": rss_kib(target.pid or 0)[0],
                                              "requests": sum(f.requests for f in rounds[target.name])}
        results["rounds"] = {name: [asdict(f) for f in figures] for name, figures in rounds.items()}
        results["http_auth"] = http_auth
    finally:
        if load is not None:
            load.close()
        world.close()
    results["seconds"] = time.perf_counter() - started
    return results


def litellm_version(python: Path) -> str:
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or "unknown"


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- the table --------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str) -> str:
    if value is None or value != value:
        return "-"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "us":
        return f"{value:.1f} us"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "/s":
        return f"{value:,.0f}/s"
    return f"{value:g}"


LABELS = {"gateway": "gateway", "litellm": "LiteLLM"}


@dataclass
class Row:
    metric: str
    direct: str = ""
    cells: dict[str, tuple[str, str]] = field(default_factory=dict)   # target -> (value, added)
    target: str = ""
    verdicts: dict[str, bool | None] = field(default_factory=dict)    # gateway-like target -> met?

    def verdict(self) -> str:
        shown = {k: v for k, v in self.verdicts.items() if v is not None}
        if not shown:
            return "-" if self.target else ""
        word = {True: "met", False: "MISSED"}
        if list(shown) == ["gateway"]:
            return word[shown["gateway"]]
        return "; ".join(f"{'' if k == 'gateway' else k.removeprefix('gateway') + ' '}{word[v]}"
                         for k, v in shown.items())


def build_rows(results: dict[str, Any]) -> tuple[list[str], list[Row]]:
    """The targets measured (besides direct) and the table's rows."""
    options = results["options"]
    rounds = results["rounds"]
    names = [n for n in rounds if n != "direct"]
    gateways = [n for n in names if n.startswith("gateway")]
    cadence = options["chunk_interval"] * 1000
    rows: list[Row] = []

    def med(name: str, key: str) -> float:
        return median([r[key] for r in rounds[name] if r[key] is not None])

    def added(name: str, key: str) -> float:
        """Median over rounds of (target - direct) in the same round."""
        return median([t[key] - d[key] for t, d in zip(rounds[name], rounds["direct"], strict=True)])

    def timing(metric: str, key: str, target: str = "", limit: float | None = None, unit: str = "ms") -> None:
        row = Row(metric, _fmt(med("direct", key), unit), target=target)
        for name in names:
            row.cells[name] = (_fmt(med(name, key), unit), _fmt(added(name, key), unit))
            if name in gateways and limit is not None:
                row.verdicts[name] = added(name, key) <= limit
        rows.append(row)

    timing("latency p50, 1 at a time", "lat_p50", "added <= 0.5 ms", 0.5)
    timing("latency p99, 1 at a time", "lat_p99", "added <= 3 ms", 3.0)

    has_litellm = "litellm" in rounds
    ll_rps = med("litellm", "rps") if has_litellm else None
    row = Row(f"requests/s, {options['concurrency']} concurrent", _fmt(med("direct", "rps"), "/s"),
              target=">= 30x LiteLLM" if has_litellm else "")
    for name in names:
        rps = med(name, "rps")
        ratio = f"{rps / ll_rps:.1f}x LiteLLM" if ll_rps and name != "litellm" else ""
        row.cells[name] = (_fmt(rps, "/s"), ratio)
        if name in gateways and has_litellm:
            row.verdicts[name] = bool(ll_rps) and rps / ll_rps >= 30
    rows.append(row)
    timing(f"p99, {options['concurrency']} concurrent", "rate_p99")
    row = Row(f"process CPU, {options['concurrency']} concurrent", target="of its one core")
    capacity = Row("requests/s per core (per CPU-second)", target=">= 4,000/s")
    for name in names:
        cpu = med(name, "rate_cpu")
        row.cells[name] = (_fmt(cpu * 100, "%"), "")
        per_core = med(name, "rps") / cpu if cpu else None
        capacity.cells[name] = (_fmt(per_core, "/s"), "")
        if name in gateways:
            capacity.verdicts[name] = per_core is not None and per_core >= 4000
    rows += [row, capacity]

    clients = options["stream_clients"]
    timing("stream TTFT p50, 1 client", "ttft1_p50", "added <= 0.5 ms", 0.5)
    timing("stream TTFT p99, 1 client", "ttft1_p99")
    timing(f"stream TTFT p50, {clients} clients", "ttft16_p50", "added <= 0.5 ms", 0.5)
    timing(f"stream TTFT p99, {clients} clients", "ttft16_p99")
    timing("chunk gap p99, 1 client", "gap1_p99")
    timing(f"chunk gap p99, {clients} clients", "gap16_p99")
    for key, label in (("coalesced1", "1 client"), ("coalesced16", f"{clients} clients")):
        row = Row(f"coalesced gaps (< {cadence / 2:g} ms), {label}", _fmt(med("direct", key), "%"),
                  target="< 1 %")
        for name in names:
            row.cells[name] = (_fmt(med(name, key), "%"), _fmt(added(name, key), "%"))
            if name in gateways:
                row.verdicts[name] = med(name, key) < 1
        rows.append(row)

    reference = {d for r in rounds["direct"] for d in r["digests"]}
    row = Row("byte-identical streams", f"{len(reference)} distinct", target="all (1 distinct direct)")
    for name in names:
        same = sum(c for r in rounds[name] for d, c in r["digests"].items() if d in reference)
        total = sum(c for r in rounds[name] for c in r["digests"].values())
        row.cells[name] = (f"{same}/{total}", "")
        if name in gateways:
            row.verdicts[name] = same == total and total > 0 and len(reference) == 1
    rows.append(row)

    memory = results["memory"]
    gw_mem = memory["gateway"]
    row = Row(f"resident memory after {gw_mem['requests']:,} requests", target="<= 80 MB")
    for name in names:
        mem = memory[name]
        note = (f"warm {gw_mem['rss_warm_kib'] / 1024:.1f}, peak {gw_mem['hwm_kib'] / 1024:.1f} MB"
                if name == "gateway" else f"after {mem['requests']:,} requests")
        row.cells[name] = (_fmt(mem["rss_kib"] / 1024, "MB"), note)
        if name in gateways:
            row.verdicts[name] = mem["rss_kib"] / 1024 <= 80
    rows.append(row)
    ready = results["ready"]
    for key, label in (("health", "ready: /health answers"), ("first", "ready: first proxied answer")):
        row = Row(label + f" (median of {len(ready['gateway'][key])})" * (key == "health"),
                  target="<= 0.5 s")
        for name in gateways:
            value = median(ready[name][key])
            row.cells[name] = (_fmt(value, "s"), "")
            row.verdicts[name] = value <= 0.5
        if has_litellm:
            row.cells["litellm"] = (_fmt(results["litellm_ready"][key], "s"),
                                    "port open" if key == "health" else "")
        rows.append(row)

    auth = results["auth"]

    def gw_only(metric: str, value: str, added_: str = "", direct: str = "", target: str = "",
                ok: bool | None = None) -> None:
        rows.append(Row(metric, direct, {"gateway": (value, added_)}, target, {"gateway": ok}))

    gw_only("verify uncached RS256 (CPU per token)", _fmt(auth["uncached"]["cpu_us"], "us"),
            target="<= 300 us", ok=auth["uncached"]["cpu_us"] <= 300)
    gw_only("verify cached (CPU per token)", _fmt(auth["cached"]["cpu_us"], "us"), target="<= 10 us",
            ok=auth["cached"]["cpu_us"] <= 10)
    gw_only("verifications/s on one core, uncached", _fmt(auth["uncached_per_second"], "/s"))
    gw_only("verifications/s on one core, cached", _fmt(auth["cached_per_second"], "/s"))
    http = results["http_auth"]
    health_p50 = _fmt(median([h["health_p50"] for h in http]), "ms") + " /health"
    for key, label in (("cached_p50", "cached token"), ("uncached_p50", "new token")):
        gw_only(f"auth step over HTTP, {label} (p50)",
                _fmt(median([h[key] for h in http]), "ms") + " /v1/models",
                _fmt(median([h[key] - h["health_p50"] for h in http]), "ms"), direct=health_p50)
    fetches = results["key_fetches_once_warm"]
    gw_only("key fetches once warm", str(fetches), target="0", ok=fetches == 0)
    window, tables = results["table_window_seconds"], results["table_requests_once_warm"]
    polls, reads, writes = tables.get("polls", 0), tables.get("reads", 0), tables.get("writes", 0)
    served = sum(f["requests"] for name in names if name != "litellm" for f in rounds[name])
    served += sum(h["requests"] for h in http)
    gw_only(f"table reads once warm ({served:,} requests, {window:.0f} s)", f"{reads} reads, {polls} polls",
            f"{writes} writes; poll every {results['refresh_seconds']:g} s",
            target="0 reads; polls by time only",
            ok=reads == 0 and polls <= len(gateways) * (window / results["refresh_seconds"] + 2))
    stopped = results["azurite_stopped"]
    gw_only("requests OK with Azurite stopped", f"{stopped['ok']}/{stopped['sent']}", target="all",
            ok=stopped["ok"] == stopped["sent"])
    if "gateway+rule" in rounds:
        rows += rule_rows(results)
    return names, rows


def rule_rows(results: dict[str, Any]) -> list[Row]:
    """What one active rate limit adds over the same gateway without rules (in the same rounds), and
    how often its counters were called once warm (leases refill in the background, so per request: 0)."""
    rounds = results["rounds"]
    pairs = list(zip(rounds["gateway+rule"], rounds["gateway"], strict=True))
    rows = []
    for key, label in (("lat_p50", "p50"), ("lat_p99", "p99")):
        extra = median([ruled[key] - plain[key] for ruled, plain in pairs])
        rows.append(Row(f"added by one active rule, latency {label}, 1 at a time",
                        cells={"gateway+rule": (_fmt(med_of(rounds["gateway+rule"], key), "ms"),
                                                _fmt(extra, "ms") + " over gateway")},
                        target="<= 0.1 ms" if key == "lat_p50" else "",
                        verdicts={"gateway+rule": extra <= 0.1 if key == "lat_p50" else None}))
    calls = results["table_requests_once_warm"].get("limits", 0)
    served = sum(f["requests"] for f in rounds["gateway+rule"])
    rows.append(Row(f"rule counter calls once warm ({served:,} requests)",
                    cells={"gateway+rule": (f"{calls} calls", f"{calls / max(served, 1):.4f} per request")},
                    target="0 per request (refills in the background)",
                    verdicts={"gateway+rule": calls / max(served, 1) < 0.01}))
    return rows


def med_of(rounds: list[dict[str, Any]], key: str) -> float:
    return median([r[key] for r in rounds if r[key] is not None])


def _foreign(results: dict[str, Any], q: float) -> float:
    shares = [r.get("foreign", 0.0) * 100 for rounds in results["rounds"].values() for r in rounds]
    return pct(shares, q) if shares else 0.0


def render(results: dict[str, Any]) -> str:
    names, rows = build_rows(results)
    header = ["metric", "direct"]
    for name in names:
        label = LABELS.get(name, name)
        header += [label, f"{label} added"]
    header += ["target", "verdict"]
    table = [header]
    for row in rows:
        cells = [row.metric, row.direct]
        for name in names:
            cells += list(row.cells.get(name, ("", "")))
        table.append([*cells, row.target, row.verdict()])
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    lines = [line(table[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [line(cells) for cells in table[1:]]
    m, o = results["machine"], results["options"]
    tested = "gateway" + (" / LiteLLM" if "litellm" in names else "") + "".join(
        f" / gateway+{v}" for v in results["variants"])
    notes = [
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, Linux {m['kernel']}; pinned: "
        f"{m['pinned']} ({tested} on core {GATEWAY_CORE}, one at a time; emulator, load generator, Azurite "
        f"and the identity provider share core {UPSTREAM_CORE})",
        f"{o['rounds']} interleaved rounds, medians of rounds; 'added' = median over rounds of (target - "
        f"direct) in the same round; {o['seq']} sequential requests, {o['rate_seconds']:g} s at "
        f"{o['concurrency']} concurrent, {o['streams_1']} + {o['stream_clients']}x{o['streams_16']} streams "
        f"per round and target; emulator cadence {o['chunk_interval'] * 1000:g} ms",
        f"gateway: GATEWAY_LOG_LEVEL={o['log_level']}; "
        + ("httptools + uvloop (BENCH_FAST_SERVER=1)" if o["fast_server"]
           else "as committed (python -m shared serve: httptools + uvloop)")
        + f"; source: {results['source']}; run took {results['seconds']:.0f} s; {results['when']}; other "
        f"processes on the machine used {results['foreign_cpu'] * 100:.0f} % of a core during the rounds "
        f"(per target and round: median {_foreign(results, 50):.0f} %, max {_foreign(results, 100):.0f} %)",
    ]
    notes += [f"gateway+{v}: {VARIANTS[v]}" for v in results["variants"]]
    if "litellm_ready" in results:
        notes.append(f"LiteLLM {results['litellm_ready']['version']} proxy, 1 worker, master key only "
                     "(no JWT, no database)")
    return "\n".join([*lines, "", *notes])


def main() -> int:
    options = Options.from_env()
    out = Path(options.out)
    results = run(options, out)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"results-{stamp}.json").write_text(json.dumps(results, indent=1))
    text = render(results)
    (out / "last.txt").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
