"""`make run`: restarts keep the user's configuration, ports and Ctrl-C behave, tokens for any user.

The sandbox is driven through its real entry points: its registration function on Azurite, and
`python -m sandbox` as a process (its own Azurite, identity provider, emulator and gateway on free
ports, its state in a temporary SANDBOX_DIR, so a developer's `make run` is never disturbed).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from sandbox.azurite import free_port, port_open
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from sandbox.options import OptionError, in_use
from sandbox.register import Outcome, register, sandbox_document
from sandbox.token import claims_of
from shared.config.entities import Write, collaborator_key
from shared.config.model import Config
from shared.config.store import ConfigStore
from shared.settings import SettingsError, load
from tests.harness import EMULATOR_KEY_ENV, ROOT, NewWorld, Tables, gateway_env

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")

TARGET = {"account": "sandbox-aoai", "deployment": "gpt-4o"}


# -- restarts keep the user's configuration ------------------------------------------------------------

def restart(tables: Tables, emulator_url: str = "http://127.0.0.1:7082") -> Outcome:
    """What `make run` does to the tables at each start."""
    doc = sandbox_document("http://127.0.0.1:7081/keys", "http://127.0.0.1:7081", emulator_url,
                           EMULATOR_KEY_ENV)
    return asyncio.run(register(doc, gateway_env(tables)))


def change(tables: Tables, *writes: Write) -> None:
    """A change of the user's own, through the store as `apply` and /manage make it."""
    async def go() -> None:
        store = ConfigStore.from_settings(load(tables.env), operator=True)
        try:
            await store.write(writes)
        finally:
            await store.aclose()

    asyncio.run(go())


def audit_actions(tables: Tables, actor: str) -> list[str]:
    async def go() -> list[dict[str, Any]]:
        store = ConfigStore.from_settings(load(tables.env))
        try:
            return await store.audit_trail()
        finally:
            await store.aclose()

    return [e["action"] for e in asyncio.run(go()) if e["actor"] == actor]


def model(config: Config, name: str) -> dict[str, Any] | None:
    found = [m for m in config.models if m.name == name]
    return {"deployments": [t.deployment for t in found[0].targets]} if found else None


def roles(config: Config, resource: str) -> dict[str, str]:
    return {c.principal: c.role for c in config.collaborators if c.resource == resource}


def test_a_restart_keeps_the_users_changes_and_additions(tables: Tables) -> None:
    first = restart(tables)
    assert "model gpt-4o" in first.created and not first.kept
    change(tables,
           Write("identity_providers", "okta", {"name": "okta", "issuer": "https://example.okta.com",
                                                 "jwks_uri": "https://example.okta.com/keys"}),
           Write("models", "gpt-4o", {"name": "gpt-4o",
                                      "targets": [{**TARGET, "deployment": "gpt-4o-mine"}]}),
           Write("models", "mine", {"name": "mine", "targets": [TARGET]}),
           Write("collaborators", collaborator_key("model:mine", "user:okta/alice"),
                 {"resource": "model:mine", "principal": "user:okta/alice", "role": "editor"}),
           Write("collaborators", collaborator_key("model:gpt-4o", "user:okta/bob"),
                 {"resource": "model:gpt-4o", "principal": "user:okta/bob", "role": "viewer"}))
    for _ in range(2):
        again = restart(tables)
        assert again.kept == ("model gpt-4o",) and not again.created and not again.refreshed
    config = tables.load()
    assert model(config, "gpt-4o") == {"deployments": ["gpt-4o-mine"]}
    assert model(config, "mine") == {"deployments": ["gpt-4o"]}
    assert [p.name for p in config.identity_providers] == ["okta", "sandbox"]
    assert roles(config, "model:mine") == {"user:okta/alice": "editor"}
    assert roles(config, "model:gpt-4o") == {"identity:sandbox-developers": "viewer",
                                             "user:okta/bob": "viewer"}
    assert "delete" not in audit_actions(tables, "sandbox")


def test_a_deleted_sandbox_model_comes_back_at_the_next_start(tables: Tables) -> None:
    restart(tables)
    change(tables, Write("models", "text-embedding-3-small", None))
    assert model(tables.load(), "text-embedding-3-small") is None
    again = restart(tables)
    assert again.created == ("model text-embedding-3-small",
                             "binding model:text-embedding-3-small -> identity:sandbox-developers")
    config = tables.load()
    assert model(config, "text-embedding-3-small") == {"deployments": ["text-embedding-3-small"]}
    assert roles(config, "model:text-embedding-3-small") == {"identity:sandbox-developers": "viewer"}


def test_what_the_sandbox_still_owns_is_refreshed_and_what_the_user_changed_is_not(tables: Tables) -> None:
    restart(tables, "http://127.0.0.1:7082")
    assert restart(tables, "http://127.0.0.1:7092").refreshed == ("account sandbox-aoai",)
    assert tables.load().accounts[0].endpoint == "http://127.0.0.1:7092"
    change(tables, Write("accounts", "sandbox-aoai", {
        "name": "sandbox-aoai", "kind": "azure-openai", "endpoint": "http://127.0.0.1:7092",
        "api_version": "2025-01-01-preview", "auth": {"type": "api-key", "key_env": EMULATOR_KEY_ENV}}))
    assert restart(tables, "http://127.0.0.1:7099").kept == ("account sandbox-aoai",)
    account = tables.load().accounts[0]
    assert (account.endpoint, account.api_version) == ("http://127.0.0.1:7092", "2025-01-01-preview")


def test_tables_the_sandbox_filled_before_it_kept_a_record_are_taken_as_its_own(tables: Tables) -> None:
    """Tables an earlier `make run` wrote (no record): what equals the sandbox's is its own again."""
    restart(tables)

    async def forget() -> None:
        store = ConfigStore.from_settings(load(tables.env))
        try:
            await store.table("sandbox").delete("sandbox", "written")
        finally:
            await store.aclose()

    asyncio.run(forget())
    assert restart(tables) == Outcome((), (), ())
    assert restart(tables, "http://127.0.0.1:7092").refreshed == ("account sandbox-aoai",)


# -- `python -m sandbox` as a process ------------------------------------------------------------------

def azurite_base() -> int:
    """A port whose next two are free too (Azurite's blob, queue and table)."""
    for _ in range(50):
        base = free_port()
        if base <= 65533 and not any(in_use(p) for p in (base + 1, base + 2)):
            return base
    raise RuntimeError("no three free ports in a row")


def distinct_ports() -> tuple[int, int, int, int]:
    """Three free ports and an Azurite base, no two the same: free ports asked for one after the other
    may repeat (each is released before the next is asked for), and the sandbox refuses a port asked for
    twice."""
    for _ in range(50):
        ports = (free_port(), free_port(), free_port(), azurite_base())
        taken = {*ports[:3], ports[3], ports[3] + 1, ports[3] + 2}
        if len(taken) == 6:
            return ports
    raise RuntimeError("no six distinct free ports")


def sandbox_env(state: Path, **extra: str) -> dict[str, str]:
    """Free ports, a state directory and tables of the test's own; the sandbox's own Azurite."""
    gateway, idp, emulator, azurite = distinct_ports()
    return {**os.environ, "SANDBOX_DIR": str(state), "GATEWAY_PORT": str(gateway),
            "SANDBOX_IDP_PORT": str(idp), "SANDBOX_EMULATOR_PORT": str(emulator),
            "SANDBOX_AZURITE_PORT": str(azurite),
            "GATEWAY_TABLES_CONNECTION": "UseDevelopmentStorage=true", "GATEWAY_TABLES_ENDPOINT": "",
            "GATEWAY_TABLE_PREFIX": "sbx" + os.urandom(4).hex(), "GATEWAY_ADMINS": "",
            "PYTHONUNBUFFERED": "1", **extra}


def sandbox(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sandbox", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()      # state, ppid, pgrp, session, ...


def processes() -> dict[int, list[str]]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[0] != "Z":
            out[int(entry.name)] = fields
    return out


def descendants(pid: int) -> set[int]:
    table, found, frontier = processes(), set(), {pid}
    while frontier:
        frontier = {p for p, f in table.items() if int(f[1]) in frontier} - found
        found |= frontier
    return found


def leftovers(pid: int, state: Path) -> set[int]:
    """Processes of the sandbox's session or process group, or naming its state directory (Azurite)."""
    out = set()
    for p, fields in processes().items():
        try:
            named = str(state) in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            named = False
        if pid in (int(fields[2]), int(fields[3])) or named:
            out.add(p)
    return out


@dataclass
class Running:
    process: subprocess.Popen[str]
    env: dict[str, str]
    state: Path
    children: set[int]

    @property
    def output(self) -> str:
        return (self.state / "out.log").read_text()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['GATEWAY_PORT']}"


@contextmanager
def running_sandbox(state: Path) -> Iterator[Running]:
    """`python -m sandbox` in a session of its own, as a terminal would run `make run`, until its
    banner is out."""
    env = sandbox_env(state)
    state.mkdir(parents=True, exist_ok=True)
    with (state / "out.log").open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "sandbox"], cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
    run = Running(process, env, state, set())
    try:
        deadline = time.monotonic() + 90
        while "Ctrl-C stops everything" not in run.output:
            assert process.poll() is None, run.output
            assert time.monotonic() < deadline, run.output
            time.sleep(0.1)
        run.children = descendants(process.pid)
        yield run
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in leftovers(process.pid, state):
            os.kill(pid, signal.SIGKILL)
        process.wait()


def ctrl_c(run: Running) -> float:
    """What a terminal does on Ctrl-C: SIGINT to the whole foreground process group."""
    started = time.monotonic()
    os.killpg(run.process.pid, signal.SIGINT)
    return started


def make_stop(run: Running) -> float:
    """`make stop` from another shell; it returns once the sandbox itself has exited."""
    done = sandbox(run.env, "stop")
    assert done.returncode == 0 and f"stopped the sandbox (pid {run.process.pid})" in done.stdout
    return time.monotonic()


@pytest.mark.e2e
@pytest.mark.parametrize("stop", [ctrl_c, make_stop], ids=["ctrl-c", "make-stop"])
def test_make_run_serves_then_stops_everything_within_two_seconds(tmp_path: Path, stop: Any) -> None:
    python = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable
    with running_sandbox(tmp_path / "state") as run:
        assert len(run.children) >= 2, "Azurite and the gateway"
        token = (run.state / "token").read_text()
        assert visible(run.url, token) == {"gpt-4o", "text-embedding-3-small"}
        assert visible(run.url, console_sign_in(run.url)) == {"gpt-4o", "text-embedding-3-small"}
        assert oct((run.state / "token").stat().st_mode & 0o777) == "0o600"
        assert f"\n{python} - <<'PY'\n" in run.output and f"{python} -m sandbox token --sub" in run.output
        assert "\npython " not in run.output
        second = sandbox({**run.env, "GATEWAY_PORT": str(free_port())})
        assert (second.returncode, second.stderr) == (
            2, f"error: a sandbox is already running (pid {run.process.pid}); `make stop` stops it\n")
        started = stop(run)
        while (alive := leftovers(run.process.pid, run.state) | (run.children & set(processes()))) or \
                run.process.poll() is None:
            assert time.monotonic() - started < 2, f"still running after 2 s: {sorted(alive)}"
            time.sleep(0.02)
        assert run.process.returncode == 0
        assert not (run.state / "run.pid").exists()


def console_sign_in(url: str) -> str:
    """The console's "Sign in with sandbox", as the browser runs it: the provider offered, its
    authorization (the sandbox user, approved at once), the code exchanged through the gateway."""
    offered = requests.get(f"{url}/console/auth/providers", timeout=10).json()["providers"]
    assert [p["name"] for p in offered] == ["sandbox"]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = f"{url}/console/"
    back = requests.get(offered[0]["authorization_endpoint"], allow_redirects=False, timeout=10, params={
        "response_type": "code", "client_id": offered[0]["client_id"], "redirect_uri": redirect,
        "state": "s", "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256"})
    code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
    answer = requests.post(f"{url}/console/auth/token", timeout=10, headers={"origin": url}, json={
        "provider": "sandbox", "code": code, "code_verifier": verifier, "redirect_uri": redirect})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def listening(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


@pytest.mark.integration
@pytest.mark.parametrize(("knob", "offset"), [
    ("GATEWAY_PORT", 0), ("SANDBOX_IDP_PORT", 0), ("SANDBOX_EMULATOR_PORT", 0),
    ("SANDBOX_AZURITE_PORT", 0), ("SANDBOX_AZURITE_PORT", 2),
])
def test_a_port_in_use_is_one_line_naming_its_setting_and_leaves_nothing_running(
        tmp_path: Path, knob: str, offset: int) -> None:
    env = sandbox_env(tmp_path)
    port = int(env[knob]) + offset
    with listening(port):
        process = subprocess.Popen([sys.executable, "-m", "sandbox"], cwd=ROOT, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        out, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert err.splitlines() == [err.strip()] and err.startswith(f"error: port {port} is in use; set {knob}")
    assert out == ""
    assert not leftovers(process.pid, tmp_path)


@pytest.mark.integration
@pytest.mark.parametrize(("knob", "value"), [("SANDBOX_IDP_PORT", "http"), ("SANDBOX_EMULATOR_PORT", "0"),
                                             ("SANDBOX_AZURITE_PORT", "65535"), ("GATEWAY_PORT", "70000")])
def test_a_malformed_port_names_its_setting(tmp_path: Path, knob: str, value: str) -> None:
    done = sandbox(sandbox_env(tmp_path, **{knob: value}))
    assert done.returncode == 2 and done.stderr.startswith(f"error: {knob} must be") and done.stdout == ""


# -- GATEWAY_PORT -------------------------------------------------------------------------------------

def test_gateway_port_defaults_to_7071_and_is_checked() -> None:
    assert load({}).port == 7071 and load({"GATEWAY_PORT": "8080"}).port == 8080
    with pytest.raises(SettingsError, match="GATEWAY_PORT"):
        load({"GATEWAY_PORT": "seventy"})


@pytest.mark.e2e
def test_serve_listens_on_gateway_port(tables: Tables, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, **gateway_env(tables), "GATEWAY_PORT": str(port)}
    with (tmp_path / "serve.log").open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "shared", "serve"], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            assert process.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "serve.log").read_text()
            time.sleep(0.05)
        assert requests.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).status_code == 401
    finally:
        process.terminate()
        process.wait(10)


# -- tokens for other users ---------------------------------------------------------------------------

@pytest.mark.parametrize(("pairs", "claims"), [
    (["groups=eng"], {"groups": ["eng"]}),
    (["groups=eng", "groups=ops"], {"groups": ["eng", "ops"]}),
    (["roles=Reader"], {"roles": ["Reader"]}),
    (["tier=gold"], {"tier": "gold"}),
    (["tier=gold", "tier=silver"], {"tier": ["gold", "silver"]}),
    (["note=a=b"], {"note": "a=b"}),
])
def test_claims_from_the_command_line(pairs: list[str], claims: dict[str, Any]) -> None:
    assert claims_of(pairs, None) == claims


@pytest.mark.parametrize("pair", ["groups", "=eng", "sub=alice", "iss=http://x", "exp=1"])
def test_claims_that_cannot_be_given(pair: str) -> None:
    with pytest.raises(OptionError, match="--claim"):
        claims_of([pair], None)


@pytest.fixture
def sandbox_idp(tmp_path: Path, loop: BackgroundLoop) -> Iterator[DevIdentityProvider]:
    """The identity provider of a running sandbox whose state is in tmp_path."""
    idp = DevIdentityProvider(key_file=tmp_path / "idp-key.pem")
    loop.run(idp.start())
    yield idp
    loop.run(idp.stop())


def mint(tmp_path: Path, idp: DevIdentityProvider, *args: str) -> str:
    done = sandbox({**os.environ, "SANDBOX_DIR": str(tmp_path), "SANDBOX_IDP_PORT": str(idp.port)},
                   "token", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def rbac_config(idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> dict[str, Any]:
    """The sandbox's configuration, plus what an operator trying roles adds."""
    doc = sandbox_document(idp.jwks_uri, idp.issuer, emulator.url, EMULATOR_KEY_ENV)
    doc["external_identities"].append({"name": "eng", "identity_provider": "sandbox",
                                       "claims": {"groups": "eng"}})
    doc["models"] += [{"name": name, "targets": [{"account": "sandbox-aoai", "deployment": "gpt-4o"}]}
                      for name in ("eng-model", "bob-model")]
    doc["collaborators"] += [
        {"resource": "model:eng-model", "principal": "identity:eng", "role": "viewer"},
        {"resource": "model:bob-model", "principal": "user:sandbox/bob", "role": "viewer"}]
    return doc


def visible(url: str, token: str) -> set[str]:
    answer = requests.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return {m["id"] for m in answer.json()["data"]}


def test_a_minted_token_is_that_user_with_those_groups(new_world: NewWorld, sandbox_idp: DevIdentityProvider,
                                                       emulator: AzureOpenAIEmulator, tmp_path: Path) -> None:
    bob = mint(tmp_path, sandbox_idp, "--sub", "bob", "--claim", "groups=eng", "--email", "bob@example.com",
               "--minutes", "5")
    carol = mint(tmp_path, sandbox_idp, "--sub", "carol", "--claim", "groups=ops")
    claims = jwt.decode(bob, options={"verify_signature": False})
    assert (claims["sub"], claims["groups"], claims["email"]) == ("bob", ["eng"], "bob@example.com")
    assert claims["exp"] - claims["iat"] == 300 and claims["iss"] == sandbox_idp.issuer
    with new_world(config=rbac_config(sandbox_idp, emulator)) as world:
        assert visible(world.url, bob) == {"eng-model", "bob-model"}
        assert visible(world.url, carol) == set()
    assert oct((tmp_path / "idp-key.pem").stat().st_mode & 0o777) == "0o600"


def test_the_signing_key_persists_across_runs(tmp_path: Path) -> None:
    first = DevIdentityProvider(key_file=tmp_path / "idp-key.pem")
    (tmp_path / "idp-key.pem").chmod(0o644)
    second = DevIdentityProvider(key_file=tmp_path / "idp-key.pem")
    assert first.default_kid == second.default_kid
    assert oct((tmp_path / "idp-key.pem").stat().st_mode & 0o777) == "0o600"


@pytest.mark.integration
def test_no_token_before_the_sandbox_has_a_key(tmp_path: Path) -> None:
    done = sandbox({**os.environ, "SANDBOX_DIR": str(tmp_path)}, "token", "--sub", "bob")
    assert done.returncode == 2 and "run `make run` once first" in done.stderr and done.stdout == ""
    assert not (tmp_path / "idp-key.pem").exists()
