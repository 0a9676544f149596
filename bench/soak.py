"""`make soak`: mixed traffic through one gateway for SOAK_SECONDS (default 300) with injected faults.

Traffic (SOAK_CONCURRENCY workers, each request bounded by a 30 s timeout, the run by the deadline):
valid requests and streams with cached and never-seen tokens, hostile tokens, model listings, requests
to a model whose upstream misbehaves, and configuration writes every SOAK_WRITE_SECONDS. Faults, on a
timeline: the identity provider down (20-30 %), the faulty model's upstream down (40-45 %), Azurite
restarted (60 %), and all along upstream 429, 500, 503 and streams reset mid-way on the faulty model.

Every answer is put in a class. Expected classes: `ok`, `refused token` (401 for every hostile token),
and on the faulty model only `upstream 429`, `upstream failed` (502), `stream broken` (the stream ends
with `event: error`). Anything else is `unexpected` and must be 0. A configuration write that storage
acknowledged is lost if the gateway never serves it (its model never appears in /v1/models within the
deadline) or it is missing from the tables at the end: must be 0. The gateway's open files and memory
are read after warm-up and at the end.

Everything is on loopback; the emulators and the identity provider run in this process so faults can
be injected; the gateway is `python -m shared serve` in its own process.
"""

# ruff: noqa: S311 (a random traffic mix, nothing secret)

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from sandbox.azurite import Azurite, free_port, port_open
from sandbox.emulator import AzureOpenAIEmulator, Fault
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from shared.config.store import ConfigStore
from shared.settings import load

from .world import AUDIENCE, OUT, apply_config, open_fds, rss_kib, spawn, wait_until

KEY_ENV = "GATEWAY_SECRET_SOAK_EMULATOR_KEY"   # the gateway reads only this prefix
KEY = "soak-emulator-key"
FAULTY_DEPLOYMENT = "faulty-dep"
REQUEST_TIMEOUT = 30.0


@dataclass
class Tally:
    classes: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    writes_acked: int = 0
    writes_failed: int = 0
    writes_lost: int = 0
    propagation: list[float] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)
    timeline: list[str] = field(default_factory=list)

    def bad(self, what: str, detail: str = "") -> None:
        self.classes["unexpected"] += 1
        self.unexpected[what] += 1
        if len(self.samples) < 20:
            self.samples.append(f"{what}: {detail[:200]}")


def document(idp: DevIdentityProvider, steady: str, faulty: str, version: int) -> dict[str, Any]:
    """The configuration; each write adds model soak-<version> (and drops the one before)."""
    dynamic = f"soak-{version}"
    return {
        "identity_providers": [{"name": "dev", "jwks_uri": idp.jwks_uri, "issuer": idp.issuer,
                                "audiences": [AUDIENCE]}],
        "external_identities": [{"name": "developers", "identity_provider": "dev",
                                 "claims": {"groups": "developers"}}],
        "accounts": [{"name": "steady", "kind": "azure-openai", "endpoint": steady,
                      "auth": {"type": "api-key", "key_env": KEY_ENV}},
                     {"name": "faulty", "kind": "azure-openai", "endpoint": faulty,
                      "auth": {"type": "api-key", "key_env": KEY_ENV}}],
        "models": [{"name": "gpt-4o", "targets": [{"account": "steady", "deployment": "gpt-4o-dep"}]},
                   {"name": "faulty", "targets": [{"account": "faulty", "deployment": FAULTY_DEPLOYMENT}]},
                   {"name": dynamic, "targets": [{"account": "steady", "deployment": "dyn-dep"}]}],
        "collaborators": [{"resource": f"model:{m}", "principal": "identity:developers", "role": "viewer"}
                          for m in ("gpt-4o", "faulty", dynamic)],
    }


def hostile_tokens(idp: DevIdentityProvider) -> dict[str, str]:
    good = idp.mint("hostile", claims={"groups": ["developers"]}, audience=AUDIENCE)
    head, payload, sig = good.split(".")
    stranger = DevIdentityProvider()           # its key is published nowhere the gateway looks
    return {
        "expired": idp.mint("x", claims={"groups": ["developers"]}, audience=AUDIENCE, expires_in=-3600),
        "wrong audience": idp.mint("x", claims={"groups": ["developers"]}, audience="api://other"),
        "unknown issuer": idp.mint("x", claims={"groups": ["developers"]}, audience=AUDIENCE,
                                   issuer="https://evil.example"),
        "tampered signature": f"{head}.{payload}.{sig[:-4]}AAAA",
        "alg none": "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + payload + ".",
        "garbage": "not-a-jwt",
        "oversized": "a" * 9000,
        "unknown key": stranger.mint("x", claims={"groups": ["developers"]}, audience=AUDIENCE,
                                     issuer=idp.issuer),
    }


class Soak:
    def __init__(self, seconds: float, concurrency: int, write_every: float, out: Path) -> None:
        self.seconds, self.concurrency, self.write_every, self.out = seconds, concurrency, write_every, out
        self.tally = Tally()
        self.loop = BackgroundLoop().__enter__()
        self.idp = DevIdentityProvider()
        self.steady = AzureOpenAIEmulator(api_key=KEY, chunk_interval=0.005)
        self.faulty = AzureOpenAIEmulator(api_key=KEY, chunk_interval=0.005)
        self.azurite = Azurite(out / "azurite-soak")
        self.env: dict[str, str] = {}
        self.version = 0
        self.token = ""
        self.hostile: dict[str, str] = {}
        self.started = 0.0

    # -- set-up -----------------------------------------------------------------------------------

    def start(self) -> Any:
        self.azurite.start()
        self.loop.run(self.idp.start())
        self.loop.run(self.steady.start())
        self.loop.run(self.faulty.start())
        self.env = {"GATEWAY_TABLES_CONNECTION": self.azurite.connection_string,
                    "GATEWAY_TABLE_PREFIX": "soak" + os.urandom(4).hex()}
        asyncio.run(apply_config(self.env, self.doc()))
        self.token = self.mint()
        self.hostile = hostile_tokens(self.idp)
        port = free_port()
        gateway = spawn("soak-gateway", [sys.executable, "-m", "shared", "serve", "--port", str(port)],
                        env={**self.env, "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK": "true", KEY_ENV: KEY,
                             "GATEWAY_CONFIG_REFRESH_SECONDS": "1", "GATEWAY_JWKS_TTL_SECONDS": "20",
                             "GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "10", "GATEWAY_LOG_LEVEL": "WARNING"},
                        core=None, out=self.out, url=f"http://127.0.0.1:{port}")
        wait_until(gateway, lambda: port_open(port), 60, "a listening port")
        return gateway

    def doc(self) -> dict[str, Any]:
        return document(self.idp, self.steady.url, self.faulty.url, self.version)

    def mint(self) -> str:
        return self.idp.mint(f"user-{random.randrange(1000)}", claims={"groups": ["developers"]},
                             audience=AUDIENCE)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.run(self.faulty.stop())
        self.loop.run(self.steady.stop())
        self.loop.run(self.idp.stop())
        self.loop.close()
        self.azurite.stop()
        self.azurite.wipe()

    # -- traffic ----------------------------------------------------------------------------------

    async def request(self, session: aiohttp.ClientSession, url: str, kind: str) -> None:
        faulty = kind.startswith("faulty")
        stream = kind.endswith("stream")
        model = "faulty" if faulty else "gpt-4o"
        token = self.token
        if kind == "new token":
            token = await asyncio.get_running_loop().run_in_executor(None, self.mint)
        hostile = None
        if kind == "hostile":
            hostile, token = random.choice(list(self.hostile.items()))
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "soak"}]}
        if stream:
            body["stream"] = True
        try:
            if kind == "models":
                async with session.get(url + "/v1/models", headers={"Authorization": f"Bearer {token}"}) as r:
                    await r.read()
                    self.classify(kind, r.status, b"", None)
                return
            async with session.post(url + "/v1/chat/completions", json=body,
                                    headers={"Authorization": f"Bearer {token}"}) as r:
                data = await r.read()
                self.classify(kind, r.status, data, hostile)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.tally.bad(f"{kind}: {type(exc).__name__}", str(exc))

    def classify(self, kind: str, status: int, data: bytes, hostile: str | None) -> None:
        t = self.tally
        if hostile is not None:
            if status == 401:
                t.classes["refused token"] += 1
            else:
                t.bad(f"hostile token ({hostile}) answered {status}", data.decode(errors="replace"))
            return
        faulty = kind.startswith("faulty")
        if status == 200:
            if kind.endswith("stream"):
                if data.endswith(b"data: [DONE]\n\n"):
                    t.classes["ok"] += 1
                elif faulty and b"event: error" in data[-400:]:
                    t.classes["stream broken"] += 1
                else:
                    t.bad(f"{kind}: stream ended without [DONE] or an error event", data[-200:].decode())
            else:
                t.classes["ok"] += 1
        elif faulty and status == 429:
            t.classes["upstream 429"] += 1
        elif faulty and status in (502, 504):
            t.classes["upstream failed"] += 1
        else:
            t.bad(f"{kind} answered {status}", data.decode(errors="replace"))

    async def worker(self, session: aiohttp.ClientSession, url: str, deadline: float) -> None:
        kinds = ["valid"] * 30 + ["valid stream"] * 15 + ["new token"] * 5 + ["hostile"] * 15 + \
            ["models"] * 5 + ["faulty"] * 15 + ["faulty stream"] * 15
        while time.monotonic() < deadline:
            await self.request(session, url, random.choice(kinds))

    async def inject(self, deadline: float) -> None:
        """Upstream faults on the faulty deployment, all along."""
        faults = [Fault(status=429, retry_after=1, deployment=FAULTY_DEPLOYMENT),
                  Fault(status=500, deployment=FAULTY_DEPLOYMENT),
                  Fault(status=503, deployment=FAULTY_DEPLOYMENT),
                  Fault(reset_after_chunks=3, deployment=FAULTY_DEPLOYMENT)]
        while time.monotonic() < deadline:
            if len(self.faulty.faults) < 8:
                fault = random.choice(faults)
                self.faulty.faults.append(fault)
                kind = "reset mid-stream" if fault.reset_after_chunks else f"HTTP {fault.status}"
                self.tally.injected[kind] += 1
            await asyncio.sleep(0.05)

    async def timeline(self, deadline: float) -> None:
        """Identity provider down, upstream down, Azurite restarted, at fixed shares of the run."""
        def at(share: float) -> float:
            return self.started + share * self.seconds

        async def until(when: float) -> None:
            await asyncio.sleep(max(0.0, min(when, deadline) - time.monotonic()))

        await until(at(0.2))
        self.idp.fault = "down"
        self.note("identity provider down")
        await until(at(0.3))
        self.idp.fault = None
        self.note("identity provider back")
        await until(at(0.4))
        port = self.faulty.port
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.faulty.stop(), self.loop.loop))
        self.note("faulty upstream down")
        await until(at(0.45))
        self.faulty.port = port
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.faulty.start(), self.loop.loop))
        self.note("faulty upstream back")
        await until(at(0.6))
        await asyncio.get_running_loop().run_in_executor(None, self.azurite.stop)
        self.note("Azurite stopped")
        await asyncio.sleep(3)
        await asyncio.get_running_loop().run_in_executor(None, self.azurite.start)
        self.note("Azurite restarted")

    def note(self, what: str) -> None:
        if "retrying" not in what:
            self.tally.timeline.append(f"{time.monotonic() - self.started:.0f} s {what}")
        print(f"[soak] {time.monotonic() - self.started:6.1f} s: {what}", file=sys.stderr, flush=True)

    async def writer(self, session: aiohttp.ClientSession, url: str, deadline: float) -> None:
        """A configuration write every `write_every` seconds; each acknowledged one must be served."""
        while time.monotonic() + self.write_every + 15 < deadline:
            await asyncio.sleep(self.write_every)
            self.version += 1
            while True:
                try:
                    await apply_config(self.env, self.doc())
                    break
                except Exception as exc:  # storage down: the writer was told, so nothing is lost
                    self.tally.writes_failed += 1
                    self.note(f"configuration write failed ({type(exc).__name__}), retrying")
                    await asyncio.sleep(1)
            self.tally.writes_acked += 1
            acked = time.monotonic()
            name = f"soak-{self.version}"
            while True:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                    async with session.get(url + "/v1/models",
                                           headers={"Authorization": f"Bearer {self.token}"}) as r:
                        if r.status == 200 and name in {m["id"] for m in (await r.json())["data"]}:
                            self.tally.propagation.append(time.monotonic() - acked)
                            break
                if time.monotonic() - acked > 15:
                    self.tally.writes_lost += 1
                    self.note(f"configuration write {name} not served after 15 s")
                    break
                await asyncio.sleep(0.1)

    async def final_check(self) -> None:
        """The last acknowledged write must be in the tables."""
        store = ConfigStore.from_settings(load(self.env))
        try:
            config, _ = await store.load()
        finally:
            await store.aclose()
        if self.version and f"soak-{self.version}" not in {m.name for m in config.models}:
            self.tally.writes_lost += 1

    async def drive(self, url: str, pid: int) -> dict[str, Any]:
        self.started = time.monotonic()
        deadline = self.started + self.seconds
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            warm_until = self.started + min(10.0, self.seconds * 0.1)
            warm = asyncio.gather(*(self.worker(session, url, warm_until) for _ in range(self.concurrency)))
            await warm
            start_fds, start_rss = open_fds(pid), rss_kib(pid)[0]
            tasks = [asyncio.ensure_future(self.timeline(deadline)),
                     asyncio.ensure_future(self.inject(deadline)),
                     asyncio.ensure_future(self.writer(session, url, deadline)),
                     *(asyncio.ensure_future(self.worker(session, url, deadline))
                       for _ in range(self.concurrency))]
            await asyncio.gather(*tasks)
            await asyncio.sleep(1)
            end_fds, end_rss = open_fds(pid), rss_kib(pid)[0]
        await self.final_check()
        return {"fds": (start_fds, end_fds), "rss_kib": (start_rss, end_rss)}


def render(tally: Tally, seconds: float, resources: dict[str, Any]) -> str:
    total = sum(tally.classes.values())
    rows = [("requests", f"{total:,} in {seconds:.0f} s")]
    for name in ("ok", "refused token", "upstream 429", "upstream failed", "stream broken"):
        rows.append((f"  {name}", f"{tally.classes.get(name, 0):,}"))
    queued = ", ".join(f"{what} {n:,}" for what, n in sorted(tally.injected.items()))
    rows.append(("faults queued on the faulty model", queued or "-"))
    rows.append(("fault timeline", "; ".join(tally.timeline) or "-"))
    rows.append(("unexpected errors (must be 0)", str(tally.classes.get("unexpected", 0))))
    rows += [(f"    {what}", str(n)) for what, n in tally.unexpected.most_common(10)]
    prop = sorted(tally.propagation)
    rows.append(("configuration writes acknowledged", f"{tally.writes_acked} (refused while storage was "
                 f"down, then retried: {tally.writes_failed})"))
    if prop:
        rows.append(("  served after (median / max)", f"{prop[len(prop) // 2]:.2f} s / {prop[-1]:.2f} s"))
    rows.append(("lost configuration writes (must be 0)", str(tally.writes_lost)))
    (f0, f1), (r0, r1) = resources["fds"], resources["rss_kib"]
    rows.append(("gateway open files (after warm-up -> end)", f"{f0} -> {f1} ({f1 - f0:+d})"))
    rows.append(("gateway resident memory (after warm-up -> end)",
                 f"{r0 / 1024:.1f} MB -> {r1 / 1024:.1f} MB ({(r1 - r0) / 1024:+.1f} MB)"))
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'soak':<{width}} | result |", f"|{'-' * (width + 2)}|--------|"]
    lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
    if tally.samples:
        lines += ["", "first unexpected answers:", *(f"  {s}" for s in tally.samples)]
    return "\n".join(lines)


def main() -> int:
    seconds = float(os.environ.get("SOAK_SECONDS", "300"))
    concurrency = int(os.environ.get("SOAK_CONCURRENCY", "8"))
    write_every = float(os.environ.get("SOAK_WRITE_SECONDS", "3"))
    out = Path(os.environ.get("SOAK_OUT", str(OUT / "soak")))
    out.mkdir(parents=True, exist_ok=True)
    soak = Soak(seconds, concurrency, write_every, out)
    gateway = None
    try:
        gateway = soak.start()
        resources = asyncio.run(soak.drive(gateway.url, gateway.pid))
    finally:
        if gateway is not None:
            gateway.stop()
        soak.stop()
    print(render(soak.tally, seconds, resources))
    ok = soak.tally.classes.get("unexpected", 0) == 0 and soak.tally.writes_lost == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
