"""The stand-in's non-HTTP paths and its failures: the timer and the warm-up run through the host's
admin API with the gateway's effects observable; a worker that cannot index the app or that dies
ends the host with its error instead of leaving it hanging."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from sandbox.azurite import free_port, port_open, terminate
from sandbox.idp import DevIdentityProvider
from tests.harness import ROOT, NewWorld, World

ROOT_ADMIN = "user:dev/root"
HTTP_APP = """
import os

import azure.functions as func
import azurefunctions.extensions.http.fastapi  # noqa: F401
from azurefunctions.extensions.http.fastapi import Request, Response

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="ok", methods=["GET"])
async def ok(req: Request) -> Response:
    return Response("fine")


@app.route(route="crash", methods=["GET"])
async def crash(req: Request) -> Response:
    os._exit(3)
"""


def wait_until(check: Callable[[], object], seconds: float = 20) -> object:
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return result


@pytest.fixture(scope="module")
def world(new_world: NewWorld) -> Iterator[World]:
    """A gateway whose timer has not run (its tables are its own)."""
    with new_world(host="functions", env={"GATEWAY_ADMINS": ROOT_ADMIN}) as world:
        yield world


def test_the_timer_runs_through_the_admin_api_and_records_its_report(world: World) -> None:
    api = world.api("root")
    assert api.get("status").json()["last_timer_run"] is None
    invoked = requests.post(world.url + "/admin/functions/prewarm_timer", json={"input": ""}, timeout=10)
    assert invoked.status_code == 202
    report = wait_until(lambda: api.get("status").json()["last_timer_run"])
    assert report["ok"] is True and report["accounts"]["emulator"]["ok"] is True   # type: ignore[index]
    assert "Executed 'Functions.prewarm_timer' (succeeded" in world.logs()


@pytest.mark.parametrize(("name", "body", "status"), [
    ("no_such_function", {"input": ""}, 404),
    ("health", {"input": ""}, 404),          # HTTP functions are called over HTTP
    ("prewarm_timer", ["not", "an", "object"], 400),
])
def test_the_admin_api_refuses_what_it_cannot_run(world: World, name: str, body: object, status: int) -> None:
    answer = requests.post(f"{world.url}/admin/functions/{name}", json=body, timeout=10)
    assert answer.status_code == status


def test_the_warm_up_trigger_runs_once_and_warms_the_keys(new_world: NewWorld,
                                                          idp: DevIdentityProvider) -> None:
    with new_world(host="functions") as world:
        before = idp.fetch_count
        assert requests.post(world.url + "/admin/warmup", timeout=30).status_code == 200
        assert idp.fetch_count > before          # the warm-up fetched the provider's keys before any call
        assert requests.get(world.url + "/admin/warmup", timeout=30).status_code == 200
        assert world.logs().count("Executed 'Functions.warm_up' (succeeded") == 1


def _host(app: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "funchost", "--app", str(app), "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_failed_indexing_ends_the_host_with_the_workers_error(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text("raise RuntimeError('broken on purpose')\n")
    host = _host(tmp_path, free_port())
    try:
        output, _ = host.communicate(timeout=60)
    finally:
        terminate(host)
    assert host.returncode == 1
    assert "broken on purpose" in output and "Host ready" not in output


def test_a_worker_crash_ends_the_host(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(textwrap.dedent(HTTP_APP))
    port = free_port()
    host = _host(tmp_path, port)
    try:
        wait_until(lambda: port_open(port) or host.poll() is not None, 60)
        assert requests.get(f"http://127.0.0.1:{port}/api/ok", timeout=10).text == "fine"
        crashed = requests.get(f"http://127.0.0.1:{port}/api/crash", timeout=10)
        assert (crashed.status_code, crashed.content) == (500, b"")
        output, _ = host.communicate(timeout=15)
    finally:
        terminate(host)
    assert host.returncode == 1
    assert "the worker exited (code 3)" in output
