"""Four processes, each with sixteen concurrent tasks, hammer one bucket through their own Leases on
one shared store (Azurite, redis-server). Time runs sixty times fast (a minute window lasts a second),
so a few seconds cover several windows. In every window the units admitted never pass the limit; in
every window the run spans whole (demand outruns the limit there), the under-admission stays within
the stated bound (the leases outstanding at the window's end: at most a tenth of the limit per process).

This file is also the worker: `python tests/limits/test_leases_contention.py '<json>'`. A worker says
`ready` once it has imported everything, created the table and reached its store, and only then is
told the instant to start: starting a process takes seconds on a busy machine, and a worker still
loading when the first window opens would leave that window without demand."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROCESSES, TASKS = 4, 16
LIMIT = 400
AMOUNTS = (1, 2, 3)
SPEED = 60.0            # fake seconds per real second
RUN_SECONDS = 3.5


async def work(args: dict) -> dict[str, int]:
    from shared.limits import windows
    from shared.limits.leases import Leases
    from shared.limits.stores import counter_store
    from shared.settings import load

    t0 = args["t0"]
    now = [t0]
    store = counter_store(load(args["env"]))
    # one grant before the clock starts: the table exists, the connection is open, all is imported
    await store.grant("warm-up", windows.key("minute", t0), 1, PROCESSES)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    start = float(sys.stdin.readline())
    leases = Leases(store, clock=lambda: now[0])
    admitted: dict[str, int] = {}
    await asyncio.sleep(max(0.0, start - time.time()))

    async def tick() -> None:        # the clock moves only between steps of the loop, never inside one
        while True:
            now[0] = t0 + (time.time() - start) * SPEED
            await asyncio.sleep(0.002)

    async def hammer() -> None:
        rng = random.Random()
        while time.time() < start + RUN_SECONDS:
            amount = rng.choice(AMOUNTS)
            taken = leases.try_take("hot", "minute", amount, fail_open=True)
            if taken is None:
                taken = await leases.take("hot", "minute", amount, LIMIT, fail_open=True)
            if taken:       # no await since the last try_take: the clock is the window it spent from
                key = windows.key("minute", now[0])
                admitted[key] = admitted.get(key, 0) + amount
            await asyncio.sleep(0.002)

    ticker = asyncio.ensure_future(tick())
    await asyncio.gather(*(hammer() for _ in range(TASKS)))
    ticker.cancel()
    await leases.aclose()
    await store.aclose()
    return admitted


async def counters(env: dict[str, str], keys: list[str]) -> dict[str, int]:
    from shared.limits.stores import counter_store
    from shared.settings import load

    store = counter_store(load(env))
    try:
        return {k: await store.used("hot", k) for k in keys}
    finally:
        await store.aclose()


@pytest.mark.parametrize("kind", ["table", "redis"])
def test_many_processes_never_pass_the_limit(kind: str, request: pytest.FixtureRequest) -> None:
    from shared.limits import windows
    from tests.harness import unique_prefix
    from tests.limits.conftest import redis_env, table_env

    server = request.getfixturevalue("azurite" if kind == "table" else "redis_server")
    env = (table_env if kind == "table" else redis_env)(server, unique_prefix())
    t0 = (time.time() // 86400 + 1) * 86400            # tomorrow's first minute: no Redis key expires
    args = {"env": env, "t0": t0}
    workers = [subprocess.Popen([sys.executable, __file__, json.dumps(args)], cwd=ROOT, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
               for _ in range(PROCESSES)]
    assert [w.stdout.readline() for w in workers if w.stdout] == ["ready\n"] * PROCESSES
    start = time.time() + 0.5                           # every worker is waiting: told at once
    for w in workers:
        if w.stdin:
            w.stdin.write(f"{start!r}\n")
            w.stdin.flush()
    outputs = [json.loads(w.communicate(timeout=60)[0]) for w in workers]
    assert all(w.returncode == 0 for w in workers)

    keys = sorted({k for out in outputs for k in out})
    totals = {k: sum(out.get(k, 0) for out in outputs) for k in keys}
    bound = PROCESSES * LIMIT // 10                     # leases outstanding at a window's end
    assert all(totals[k] <= LIMIT for k in keys), totals
    # the windows the hammering spanned whole, where demand outran the limit (a take still waiting on
    # a slow refill at the deadline can land in a later window, so the last key seen is not the last
    # whole window)
    whole = [windows.key("minute", t0 + i * windows.length("minute")) for i in range(int(RUN_SECONDS))]
    assert all(LIMIT - totals.get(k, 0) <= bound for k in whole), (totals, bound)
    last = keys[-1]                                     # the store still counts the last window (a Table
    used = asyncio.run(counters(env, [last]))[last]     # row holds only its bucket's latest window)
    assert totals[last] <= used <= LIMIT, (totals, used)


if __name__ == "__main__":
    sys.stdout.write(json.dumps(asyncio.run(work(json.loads(sys.argv[1])))))
