"""`make bench` end to end in a tiny configuration: every process starts, every phase runs, and the table
has every row. Timings are never asserted (this machine is shared and small); the properties the bench
reports that are not timings are: streams byte-identical, no key fetch once warm, requests served with
Azurite stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent

TINY = {
    "BENCH_ROUNDS": "1", "BENCH_SEQ": "20", "BENCH_RATE_SECONDS": "0.3", "BENCH_STREAMS_1": "2",
    "BENCH_STREAMS_16": "1", "BENCH_MEMORY_REQUESTS": "300", "BENCH_READY_STARTS": "1",
    "BENCH_AUTH_TOKENS": "20", "BENCH_AUTH_CACHED": "500", "BENCH_HTTP_AUTH": "10", "BENCH_TOKEN_POOL": "8",
    "BENCH_LITELLM": "0", "BENCH_VARIANTS": "funchost",
}

ROWS = (
    "latency p50, 1 at a time", "latency p99, 1 at a time", "requests/s, 32 concurrent",
    "p99, 32 concurrent", "process CPU, 32 concurrent", "requests/s per core",
    "stream TTFT p50, 1 client", "stream TTFT p99, 1 client", "stream TTFT p50, 16 clients",
    "stream TTFT p99, 16 clients", "chunk gap p99, 1 client", "chunk gap p99, 16 clients",
    "coalesced gaps (< 5 ms), 1 client", "coalesced gaps (< 5 ms), 16 clients", "byte-identical streams",
    "resident memory after", "ready: /health answers", "ready: first proxied answer",
    "verify uncached RS256 (CPU per token)", "verify cached (CPU per token)",
    "verifications/s on one core, uncached", "verifications/s on one core, cached",
    "auth step over HTTP, cached token", "auth step over HTTP, new token", "key fetches once warm",
    "table reads once warm", "requests OK with Azurite stopped",
)


def test_bench_runs_end_to_end_and_prints_every_row(tmp_path: Path) -> None:
    env = {**os.environ, **TINY, "BENCH_OUT": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "bench.run"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-4000:]
    rows = {}
    for line in done.stdout.splitlines():
        if line.startswith("| ") and not line.startswith("| metric"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells
    for name in ROWS:
        assert any(metric.startswith(name) for metric in rows), f"no row {name!r} in:\n{done.stdout}"
    header = next(line for line in done.stdout.splitlines() if line.startswith("| metric"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "metric", "direct", "gateway", "gateway added", "gateway+funchost", "gateway+funchost added",
        "target", "verdict"]

    def verdict(prefix: str) -> str:
        return next(cells for metric, cells in rows.items() if metric.startswith(prefix))[-1]

    assert verdict("byte-identical streams") == "met; +funchost met"   # the Functions worker path too
    assert verdict("key fetches once warm") == "met"
    assert verdict("requests OK with Azurite stopped") == "met"
    assert (tmp_path / "last.txt").read_text().startswith("| metric")
    assert list(tmp_path.glob("results-*.json"))
