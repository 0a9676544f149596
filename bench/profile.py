"""Where the gateway spends its CPU: `python -m bench.profile [--seconds S] [--stream] [--py-spy]`.

With --py-spy (from .venv-bench, `make bench-fast-server`) the gateway runs normally and py-spy samples
it from outside: no slowdown, C code and the event loop included; the report is the share of samples
per function, own and inclusive. Without it:

Runs `python -m shared serve` under cProfile (pinned to its core, as in `make bench`), drives it with the
bench load generator (32 concurrent non-streaming chat completions with cached tokens, or 16 concurrent
streams with --stream), stops it with SIGINT (uvicorn shuts down, then re-raises it, and cProfile
writes its data on the way out) and
prints the functions with the most own time and the most cumulative time. cProfile slows Python code
several-fold: read the shares, not the absolute times. Data: bench/out/gateway.prof.
"""

# ruff: noqa: S603

from __future__ import annotations

import argparse
import io
import pstats
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from .run import VARIANT_ARGV, VARIANTS, LoadGen, Target, variant_launch
from .world import OUT, ROOT, World


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--stream", action="store_true", help="profile 16 concurrent streams instead")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--py-spy", dest="py_spy", action="store_true", help="sample with py-spy instead")
    parser.add_argument("--variant", choices=sorted(VARIANTS), help="profile a variant")
    args = parser.parse_args(argv)
    if args.py_spy:
        return sample(args)
    if args.variant in VARIANT_ARGV:
        raise SystemExit(f"--variant {args.variant} is profiled with --py-spy (its worker is a subprocess)")
    prof = OUT / "gateway.prof"
    prof.unlink(missing_ok=True)
    env, cwd = variant_launch(args.variant, OUT / "profile") if args.variant else ({}, ROOT)
    world = World(OUT / "profile", chunk_interval=0.01).start()
    load = None
    try:
        token = world.mint(1, sub="prof")
        pool = world.mint(64, sub="pool")
        gw = world.start_gateway(token[0], argv=[sys.executable, "-m", "cProfile", "-o", str(prof),
                                                 "-m", "shared", "serve"], env=env, cwd=cwd)
        target = Target("gateway", gw.url, "/v1/chat/completions", {}, pid=gw.pid, seq_tokens=token,
                        pool_tokens=pool)
        load = LoadGen(OUT / "profile")
        load.run(target.job("bulk", pool=True, count=200, concurrency=8))
        if args.stream:
            per_client = max(1, int(args.seconds / 0.12))
            result = load.run(target.job("stream", stream=True, pool=True, clients=16, per_client=per_client))
            print(f"{len(result['ttft'])} streams, errors {result['errors']}")
        else:
            result = load.run(target.job("rate", pool=True, concurrency=32, seconds=args.seconds))
            print(f"{result['count']} requests in {result['elapsed']:.1f} s under cProfile, "
                  f"errors {result['errors']}")
        gw.stop(timeout=30, sig=signal.SIGINT)  # uvicorn re-raises it: KeyboardInterrupt, data written
    finally:
        if load is not None:
            load.close()
        world.close()
    if not prof.exists():
        print("no profile written (did the gateway exit cleanly?)", file=sys.stderr)
        return 1
    print(report(prof, args.top))
    return 0


def sample(args: argparse.Namespace) -> int:
    spy = ROOT / ".venv-bench" / "bin" / "py-spy"
    if not spy.exists():
        raise SystemExit("--py-spy needs .venv-bench: run `make bench-fast-server`")
    collapsed = OUT / "gateway.collapsed"
    env, cwd = variant_launch(args.variant, OUT / "profile") if args.variant else ({}, ROOT)
    world = World(OUT / "profile", chunk_interval=0.01).start()
    load = None
    try:
        token = world.mint(1, sub="prof")
        pool = world.mint(64, sub="pool")
        gw = world.start_gateway(token[0], env=env, cwd=cwd, argv=VARIANT_ARGV.get(args.variant or ""))
        target = Target("gateway", gw.url, "/v1/chat/completions", {}, pid=gw.pid, seq_tokens=token,
                        pool_tokens=pool)
        load = LoadGen(OUT / "profile")
        load.run(target.job("bulk", pool=True, count=200, concurrency=8))
        # --subprocesses: the Functions host stand-in serves through its worker process
        recorder = subprocess.Popen([str(spy), "record", "--pid", str(gw.pid), "--rate", "400", "--format",
                                     "raw", "--output", str(collapsed), "--duration", str(int(args.seconds)),
                                     "--nonblocking", "--subprocesses"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        if args.stream:
            per_client = max(1, int(args.seconds / 0.12))
            result = load.run(target.job("stream", stream=True, pool=True, clients=16, per_client=per_client))
            print(f"{len(result['ttft'])} streams, errors {result['errors']}")
        else:
            result = load.run(target.job("rate", pool=True, concurrency=32, seconds=args.seconds))
            print(f"{result['count']} requests in {result['elapsed']:.1f} s "
                  f"({result['count'] / result['elapsed']:.0f}/s), errors {result['errors']}")
        _, err = recorder.communicate(timeout=60)
        if recorder.returncode:
            print(err.decode(errors="replace"), file=sys.stderr)
            return 1
    finally:
        if load is not None:
            load.close()
        world.close()
    print(summarize(collapsed, args.top))
    return 0


def summarize(path: Path, top: int) -> str:
    """Own and inclusive shares of samples per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [re.sub(r" \((?:.*/)?([^/]+\.py):\d+\)", r" (\1)", f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    def share(counter: Counter[str]) -> list[str]:
        return [f"{n / total * 100:5.1f} %  {f}" for f, n in counter.most_common(top)]

    lines = [f"{total} samples", "== own ==", *share(own), "== inclusive ==", *share(inclusive)]
    return "\n".join(lines)


def report(path: Path, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs()
    out.write("== by own time ==\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write("== by cumulative time ==\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


if __name__ == "__main__":
    raise SystemExit(main())
