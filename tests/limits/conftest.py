"""Counter stores on real servers: the session's Azurite, and a redis-server this module starts on a
free loopback port (never a system service); each test gets counters of its own (a unique prefix).
A test that stops its server (an outage) gets a server of its own (`own_azurite`, `own_redis`)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from sandbox.azurite import Azurite, free_port, port_open, terminate
from shared.limits.counters import CounterStore, MemoryCounters
from shared.settings import load
from tests.harness import unique_prefix

STORES = ("memory", "table", "redis")


class RedisServer:
    """One redis-server in the foreground of a child process: no persistence, loopback only."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: `make install` installs Debian's package")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--protected-mode", "yes", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not listen on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        terminate(self.process, grace=5)
        self.process = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[Azurite]:
    server = Azurite(tmp_path / "azurite").start()
    yield server
    server.stop()


def table_env(azurite: Azurite, prefix: str) -> dict[str, str]:
    return {"GATEWAY_TABLES_CONNECTION": azurite.connection_string, "GATEWAY_TABLE_PREFIX": prefix,
            "GATEWAY_LIMITS_STORE": "table"}


def redis_env(server: RedisServer, prefix: str) -> dict[str, str]:
    return {"GATEWAY_LIMITS_STORE": "redis", "GATEWAY_LIMITS_REDIS_URL": server.url,
            "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK": "true", "GATEWAY_TABLE_PREFIX": prefix}


StoreFactory = Callable[[dict[str, str]], CounterStore]


def open_store(env: dict[str, str]) -> CounterStore:
    from shared.limits.stores import counter_store

    return counter_store(load(env))


@pytest.fixture(params=STORES)
def store_env(request: pytest.FixtureRequest) -> dict[str, str] | None:
    """The settings of one store kind (None: in memory), on the session's servers."""
    prefix = unique_prefix()
    if request.param == "table":
        return table_env(request.getfixturevalue("azurite"), prefix)
    if request.param == "redis":
        return redis_env(request.getfixturevalue("redis_server"), prefix)
    return None


@pytest.fixture
async def store(store_env: dict[str, str] | None) -> AsyncIterator[CounterStore]:
    counters = MemoryCounters() if store_env is None else open_store(store_env)
    yield counters
    await counters.aclose()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test on a real store server is an integration test even though it asks for the server by
    parameter (the root conftest classifies by fixture names, and would call it a unit test)."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("store_env") in ("table", "redis") or params.get("kind") in ("table", "redis"):
            item.add_marker(pytest.mark.integration)
