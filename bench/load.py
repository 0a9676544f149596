"""The load generator: an aiohttp client in its own process, driven by JSON lines on stdin.

Each line is a job; the answer is one JSON line on stdout. A job names a target (`url`, fixed
`headers`, an optional `tokens` list rotated per request as `Authorization: Bearer`) and one of:

    seq     n requests one at a time                        -> latencies (ms)
    rate    `concurrency` workers for `seconds`             -> count, elapsed, latencies (ms)
    bulk    `count` requests at `concurrency`               -> count, elapsed, errors (no latencies)
    stream  `clients` x `per_client` streaming requests     -> TTFT (ms), gaps between events (ms),
            (client i starts i/clients x `spread` s late)      SHA-256 of every stream's bytes

Every loop is bounded by its count or its seconds. Sessions (and so keep-alive connections) are kept per
base URL across jobs, as a real client would.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import sys
import time
from collections import Counter
from typing import Any

import aiohttp

_sessions: dict[str, aiohttp.ClientSession] = {}


def _session(url: str) -> aiohttp.ClientSession:
    base = url.split("/", 3)[2]
    session = _sessions.get(base)
    if session is None:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            timeout=aiohttp.ClientTimeout(total=60), auto_decompress=False)
        _sessions[base] = session
    return session


class Target:
    def __init__(self, job: dict[str, Any]) -> None:
        self.url: str = job["url"]
        self.method: str = job.get("method", "POST")
        self.body: bytes | None = job["body"].encode() if job.get("body") is not None else None
        self.headers: dict[str, str] = job.get("headers", {})
        tokens: list[str] = job.get("tokens") or []
        self._tokens = itertools.cycle(tokens) if tokens else None
        self.session = _session(self.url)

    def next_headers(self) -> dict[str, str]:
        if self._tokens is None:
            return self.headers
        return {**self.headers, "Authorization": f"Bearer {next(self._tokens)}"}


async def _one(target: Target, errors: Counter[str]) -> float | None:
    """One request read to the end; its latency in ms, or None (counted in errors)."""
    started = time.perf_counter()
    try:
        async with target.session.request(target.method, target.url, data=target.body,
                                          headers=target.next_headers()) as resp:
            await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        errors[type(exc).__name__] += 1
        return None
    if status != 200:
        errors[f"HTTP {status}"] += 1
        return None
    return (time.perf_counter() - started) * 1000


async def seq(job: dict[str, Any]) -> dict[str, Any]:
    target, errors = Target(job), Counter[str]()
    latencies = []
    for _ in range(int(job["n"])):
        ms = await _one(target, errors)
        if ms is not None:
            latencies.append(ms)
    return {"lat": latencies, "errors": dict(errors)}


async def rate(job: dict[str, Any]) -> dict[str, Any]:
    target, errors = Target(job), Counter[str]()
    latencies: list[float] = []
    deadline = time.perf_counter() + float(job["seconds"])

    async def worker() -> None:
        while time.perf_counter() < deadline:
            ms = await _one(target, errors)
            if ms is not None:
                latencies.append(ms)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(int(job["concurrency"]))))
    return {"count": len(latencies), "elapsed": time.perf_counter() - started, "lat": latencies,
            "errors": dict(errors)}


async def bulk(job: dict[str, Any]) -> dict[str, Any]:
    target, errors = Target(job), Counter[str]()
    remaining = int(job["count"])
    done = 0
    deadline = time.perf_counter() + float(job.get("max_seconds", 600))

    async def worker() -> None:
        nonlocal remaining, done
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            if await _one(target, errors) is not None:
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(int(job["concurrency"]))))
    return {"count": done, "elapsed": time.perf_counter() - started, "errors": dict(errors)}


def _non_empty_token(event: bytes) -> bool:
    """True for an SSE event carrying generated text (chat delta content or completion text)."""
    for line in event.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if not data or data == b"[DONE]":
            return False
        try:
            doc = json.loads(data)
        except ValueError:
            return False
        for choice in doc.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content") or choice.get("text"):
                return True
    return False


async def _stream_once(target: Target, errors: Counter[str], ttft: list[float], gaps: list[float],
                       digests: Counter[str]) -> None:
    started = time.perf_counter()
    first: float | None = None
    last: float | None = None
    raw = bytearray()
    buffer = b""
    try:
        async with target.session.request(target.method, target.url, data=target.body,
                                          headers=target.next_headers()) as resp:
            if resp.status != 200:
                await resp.read()
                errors[f"HTTP {resp.status}"] += 1
                return
            async for chunk in resp.content.iter_any():
                now = time.perf_counter()
                raw += chunk
                buffer += chunk
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    if not event.strip():
                        continue
                    if last is not None:
                        gaps.append((now - last) * 1000)
                    last = now
                    if first is None and _non_empty_token(event):
                        first = now
    except (aiohttp.ClientError, TimeoutError) as exc:
        errors[type(exc).__name__] += 1
        return
    if first is None:
        errors["no token"] += 1
        return
    ttft.append((first - started) * 1000)
    digests[hashlib.sha256(bytes(raw)).hexdigest()] += 1


async def stream(job: dict[str, Any]) -> dict[str, Any]:
    target, errors = Target(job), Counter[str]()
    ttft: list[float] = []
    gaps: list[float] = []
    digests: Counter[str] = Counter()

    clients = int(job["clients"])
    spread = float(job.get("spread", 0.0))

    async def client(i: int) -> None:
        await asyncio.sleep(spread * i / clients)    # independent clients do not arrive in lock-step
        for _ in range(int(job["per_client"])):
            await _stream_once(target, errors, ttft, gaps, digests)

    await asyncio.gather(*(client(i) for i in range(clients)))
    return {"ttft": ttft, "gaps": gaps, "digests": dict(digests), "errors": dict(errors)}


OPS = {"seq": seq, "rate": rate, "bulk": bulk, "stream": stream}


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            job = json.loads(line)
            try:
                result = await OPS[job["op"]](job)
            except Exception as exc:  # report, keep serving: the orchestrator decides
                result = {"failed": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
    finally:
        for session in _sessions.values():
            await session.close()


if __name__ == "__main__":
    asyncio.run(main())
