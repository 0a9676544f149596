"""Configuration at scale: 10,000 external identities, 100,000 collaborator bindings, 1,000 models.

    .venv/bin/python -m bench.config_scale [--keep DIR] [--samples N]

Seeds a fresh Azurite (from node_modules) with that configuration, in the tables' own format, then
prints, from one run: the snapshot load time (ConfigStore.load + the Policy's indexes, what every
gateway process does on start and on each change), the memory the loaded snapshot holds
(tracemalloc, and the process's peak RSS), and the latency of an authorization decision
(Policy.decide, p50/p99/max over N decisions with a caller of one user and three identities).
The load time is the median of three loads; memory is measured on a fourth.
Targets: load <= 3 s, <= 150 MB, decision p99 <= 20 us.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from sandbox.azurite import Azurite
from shared.config.allowlist import Allowlist
from shared.config.entities import BINDINGS_PK, encode_spec, pack
from shared.config.snapshot import View
from shared.config.store import BINDINGS_TABLE, ConfigStore
from shared.settings import load

IDENTITIES, BINDINGS, MODELS, WORKSPACES, ACCOUNTS = 10_000, 100_000, 1_000, 50, 10
PREFIX = "scale"
ALLOWLIST = Allowlist()   # the built-in hosts and scopes: every seeded account is within them


def _docs() -> dict[str, list[tuple[str, str, dict[str, object]]]]:
    """(partition, row, properties) per table suffix."""
    spec = encode_spec
    out: dict[str, list[tuple[str, str, dict[str, object]]]] = {
        "identityproviders": [("r", "corp", {"spec": spec({"name": "corp", "jwks_uri": "https://idp.example.com/k",
                                                           "issuer": "https://idp.example.com"})})],
        "externalidentities": [("r", f"team-{i}", {"spec": spec({
            "name": f"team-{i}", "identity_provider": "corp", "claims": {"groups": f"g{i}"}})})
                               for i in range(IDENTITIES)],
        "accounts": [("r", f"acct-{i}", {"spec": spec({"name": f"acct-{i}", "kind": "azure-openai",
                                                        "endpoint": f"https://a{i}.openai.azure.com",
                                                        "auth": {"type": "managed-identity"}})})
                     for i in range(ACCOUNTS)],
        "workspaces": [("r", f"ws-{i}", {"spec": spec({"name": f"ws-{i}"})}) for i in range(WORKSPACES)],
        "models": [("r", f"model-{i}", {"spec": spec({
            "name": f"model-{i}", "workspace": f"ws-{i % WORKSPACES}",
            "targets": [{"account": f"acct-{i % ACCOUNTS}", "deployment": f"dep-{i}"},
                        {"account": f"acct-{(i + 1) % ACCOUNTS}", "deployment": f"dep-{i}"}]})})
                   for i in range(MODELS)],
    }
    rng = random.Random(4)  # noqa: S311  (test data)
    roles = ("viewer", "viewer", "viewer", "editor", "manager")
    bindings = []
    per_model = BINDINGS // MODELS
    for m in range(MODELS):
        chosen = rng.sample(range(IDENTITIES * 3), per_model)   # identities and users, no repeats
        granted = {(f"identity:team-{c}" if c < IDENTITIES else f"user:corp/u{c}"): rng.choice(roles)
                   for c in chosen}
        bindings.append((BINDINGS_PK, f"model:model-{m}", dict(pack(granted))))
    out[BINDINGS_TABLE] = bindings
    return out


async def seed(store: ConfigStore) -> float:
    await store.ensure_tables()
    started = time.perf_counter()
    gate = asyncio.Semaphore(16)

    async def batch(table: str, rows: list[tuple[str, str, dict[str, object]]]) -> None:
        async with gate:
            await store.table(table).transaction(
                [("upsert", {"PartitionKey": pk, "RowKey": rk, **props}) for pk, rk, props in rows])

    jobs = []
    for table, rows in _docs().items():
        groups: dict[str, list[tuple[str, str, dict[str, object]]]] = {}
        for row in rows:
            groups.setdefault(row[0], []).append(row)
        for group in groups.values():
            jobs += [batch(table, group[i:i + 100]) for i in range(0, len(group), 100)]
    await asyncio.gather(*jobs)
    await store.bump_version()
    return time.perf_counter() - started


async def measure(connection: str, samples: int) -> dict[str, object]:
    settings = load({"GATEWAY_TABLES_CONNECTION": connection, "GATEWAY_TABLE_PREFIX": PREFIX})
    store = ConfigStore.from_settings(settings)
    try:
        seconds_seed = await seed(store)
        await store.load()          # warm the connection pool and imports, as a running process has
        load_times = []
        for _ in range(3):
            gc.collect()
            started = time.perf_counter()
            config, version = await store.load()
            view = View.build(config, version, frozenset(), time.time(), allowlist=ALLOWLIST)
            load_times.append(time.perf_counter() - started)
        del config, view
        gc.collect()
        tracemalloc.start()         # a separate load: tracemalloc slows Python several times over
        config, version = await store.load()
        view = View.build(config, version, frozenset(), time.time(), allowlist=ALLOWLIST)
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        await store.aclose()
    rng = random.Random(7)  # noqa: S311  (test data)
    callers = [(f"user:corp/u{rng.randrange(IDENTITIES * 3)}",
                *(f"identity:team-{rng.randrange(IDENTITIES)}" for _ in range(3))) for _ in range(1000)]
    resources = [f"model:model-{rng.randrange(MODELS)}" for _ in range(1000)]
    policy = view.policy
    timings = []
    allowed = 0
    clock = time.perf_counter_ns
    for i in range(samples):
        principals, target = callers[i % 1000], resources[(i * 7) % 1000]
        t0 = clock()
        decision = policy.decide(principals, target)
        timings.append(clock() - t0)
        allowed += decision.role is not None
    timings.sort()
    return {
        "entities": {"external_identities": len(config.external_identities), "models": len(config.models),
                     "collaborators": len(config.collaborators)},
        "seed_seconds": round(seconds_seed, 1),
        "snapshot_load_seconds": round(sorted(load_times)[1], 3),
        "snapshot_load_seconds_each": [round(t, 3) for t in load_times],
        "snapshot_memory_mb": round(held / 2**20, 1),
        "load_peak_memory_mb": round(peak / 2**20, 1),
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "decision_us": {"p50": round(timings[len(timings) // 2] / 1000, 2),
                        "p99": round(timings[int(len(timings) * 0.99)] / 1000, 2),
                        "max": round(timings[-1] / 1000, 2), "samples": samples,
                        "allowed_share": round(allowed / samples, 3)},
        "targets": {"snapshot_load_seconds": 3, "memory_mb": 150, "decision_p99_us": 20},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.config_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--keep", help="Azurite data directory to keep (default: a temporary one)")
    args = parser.parse_args(argv)
    location = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="config-scale-"))
    azurite = Azurite(location).start()
    try:
        report = asyncio.run(measure(azurite.connection_string, args.samples))
    finally:
        azurite.stop()
    print(json.dumps(report, indent=2))
    ok = (report["snapshot_load_seconds"] <= 3 and report["snapshot_memory_mb"] <= 150  # type: ignore[operator]
          and report["decision_us"]["p99"] <= 20)  # type: ignore[index]
    print("targets met" if ok else "targets NOT met", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
