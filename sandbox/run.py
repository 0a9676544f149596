"""`make run`: Azurite, a development identity provider and an Azure OpenAI emulator registered in the
tables (see sandbox/register.py: the user's configuration is never changed), then the gateway, and a
ready token with a curl and an openai SDK snippet.

Every port is checked before anything starts, so a taken one costs one line naming its knob and
leaves nothing behind. Ctrl-C, SIGTERM (`make stop`) and SIGHUP stop every process started here.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sandbox import pidfile
from sandbox.azurite import ROOT, Azurite, port_open
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from sandbox.options import DEV_STORAGE, OptionError, Options, check_ports
from sandbox.register import AUDIENCE, CONSOLE_CLIENT, Outcome, register, sandbox_document
from shared.settings import load

EMULATOR_KEY = "sandbox-key"
SANDBOX_ADMIN = "user:sandbox/sandbox-user"
GATEWAY_GRACE = 1.5            # seconds the gateway gets to stop before it is killed
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def shown(path: str | Path) -> str:
    """A path as the user would type it here: relative when under the working directory."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def banner(gateway: str, token_file: Path) -> str:
    python, token = shown(sys.executable), shown(token_file)
    return f"""
================ AI gateway: local sandbox ================
Gateway:   {gateway}   (models: gpt-4o, text-embedding-3-small; /manage as {SANDBOX_ADMIN})
Token (valid 24 h): {token}

curl -s {gateway}/v1/chat/completions \\
  -H "Authorization: Bearer $(cat {token})" \\
  -H "Content-Type: application/json" \\
  -d '{{"model": "gpt-4o", "messages": [{{"role": "user", "content": "Hello"}}]}}'

{python} - <<'PY'
from openai import OpenAI
client = OpenAI(base_url="{gateway}/v1", api_key=open("{token}").read())
print(client.chat.completions.create(model="gpt-4o",
      messages=[{{"role": "user", "content": "Hello"}}]).choices[0].message.content)
PY

A token for another user and groups (to try roles):
  {python} -m sandbox token --sub alice --claim groups=eng --email alice@example.com
Ctrl-C stops everything (or `make stop` from another shell).
============================================================
"""


def report(outcome: Outcome) -> None:
    for verb, labels in (("created", outcome.created), ("refreshed", outcome.refreshed)):
        if labels:
            print(f"sandbox: {verb} {', '.join(labels)}")
    if outcome.kept:
        print(f"sandbox: kept your changes to {', '.join(outcome.kept)}")


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)


def _stop_gateway(gateway: subprocess.Popen[bytes]) -> None:
    if gateway.poll() is None:
        gateway.send_signal(signal.SIGINT)
        try:
            gateway.wait(GATEWAY_GRACE)
        except subprocess.TimeoutExpired:
            gateway.kill()
            gateway.wait()


def _start_server(loop: BackgroundLoop, server: Any, port: int, knob: str) -> None:
    try:
        loop.run(server.start())
    except OSError:
        raise OptionError(f"port {port} is in use; set {knob}") from None


def _storage(stack: ExitStack, opts: Options, env: dict[str, str], reuse: bool) -> dict[str, str]:
    """The storage settings the gateway gets: Azurite's ports spelled out when it is the sandbox's."""
    if env.get("GATEWAY_TABLES_CONNECTION") != DEV_STORAGE:
        return {}
    blob, queue, table = opts.azurite_ports
    azurite = Azurite(opts.azurite_dir, table_port=table, tables_only=False, blob_port=blob, queue_port=queue)
    if not reuse:
        stack.callback(azurite.stop)
        azurite.start()
        print(f"Azurite started on 127.0.0.1:{blob}-{table} (data in {shown(opts.azurite_dir)})")
    out = {"GATEWAY_TABLES_CONNECTION": azurite.full_connection_string}
    if env.get("AzureWebJobsStorage", DEV_STORAGE) == DEV_STORAGE:
        out["AzureWebJobsStorage"] = azurite.full_connection_string
    return out


def _key_env(gateway_env: dict[str, str]) -> str:
    """The gateway reads only variables with its secret prefix (GATEWAY_SECRET_ unless set otherwise)."""
    return f"{load(gateway_env).secret_env_prefix}SANDBOX_AOAI_KEY"


def _gateway_env(env: dict[str, str], storage: dict[str, str]) -> dict[str, str]:
    ours = {k: v for k, v in env.items() if k.startswith(("GATEWAY_", "AZURE", "AzureWebJobs"))}
    gateway_env = {**os.environ, **ours, **storage, "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK": "true"}
    gateway_env[_key_env(gateway_env)] = EMULATOR_KEY
    if not gateway_env.get("GATEWAY_ADMINS"):
        gateway_env["GATEWAY_ADMINS"] = SANDBOX_ADMIN   # so /manage works with the printed token
    return gateway_env


def gateway_command(host: str, port: int, func: str | None = None) -> list[str]:
    """What serves the gateway: function_app.py under Core Tools (`func`, when installed) or else the
    Functions host stand-in, both through the real Python worker path; or uvicorn when asked."""
    if host == "uvicorn":
        return [sys.executable, "-m", "shared", "serve", "--port", str(port)]
    if func:
        return [func, "start", "--port", str(port)]
    return [sys.executable, "-m", "funchost", "--app", str(ROOT), "--port", str(port)]


def _start_gateway(stack: ExitStack, port: int, env: dict[str, str], host: str) -> subprocess.Popen[bytes]:
    command = gateway_command(host, port, shutil.which("func"))
    gateway = subprocess.Popen(command, cwd=ROOT, env=env)
    stack.callback(_stop_gateway, gateway)
    deadline = time.monotonic() + 60
    while not port_open(port):
        if gateway.poll() is not None:
            raise RuntimeError(f"the gateway exited (code {gateway.returncode}) before serving port {port}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gateway did not serve port {port} within 60 s")
        time.sleep(0.1)
    return gateway


def _console_sign_in(idp: DevIdentityProvider, port: int, claims: dict[str, object]) -> None:
    """The console's "Sign in with sandbox" signs in the sandbox user at once (no login page)."""
    for host in ("127.0.0.1", "localhost"):
        idp.register_client(CONSOLE_CLIENT, f"http://{host}:{port}/console/")
    idp.login_as, idp.login_claims = "sandbox-user", dict(claims)


def _serve(stack: ExitStack, opts: Options, env: dict[str, str], reuse_azurite: bool) -> int:
    gateway_env = _gateway_env(env, _storage(stack, opts, env, reuse_azurite))
    loop = stack.enter_context(BackgroundLoop())
    idp = DevIdentityProvider(port=opts.idp_port, key_file=opts.key_file)
    emulator = AzureOpenAIEmulator(port=opts.emulator_port, api_key=EMULATOR_KEY, chunk_interval=0.03)
    stack.callback(lambda: loop.run(idp.stop()))
    _start_server(loop, idp, opts.idp_port, "SANDBOX_IDP_PORT")
    stack.callback(lambda: loop.run(emulator.stop()))
    _start_server(loop, emulator, opts.emulator_port, "SANDBOX_EMULATOR_PORT")
    doc = sandbox_document(idp.jwks_uri, idp.issuer, emulator.url, _key_env(gateway_env))
    report(asyncio.run(register(doc, gateway_env)))
    gateway = _start_gateway(stack, opts.gateway_port, gateway_env, opts.host)
    user = {"groups": ["developers"], "email": "dev@localhost"}
    _console_sign_in(idp, opts.gateway_port, user)
    token = idp.mint("sandbox-user", claims=user, audience=AUDIENCE, expires_in=86400)
    _private(opts.token_file, token)
    print(banner(f"http://127.0.0.1:{opts.gateway_port}", opts.token_file), flush=True)
    return gateway.wait()


def run(opts: Options, env: dict[str, str]) -> int:
    """Everything up, until a signal or the gateway's exit; everything down again. Raises
    OptionError (one line) when a port or knob is wrong, before anything has started."""
    other = pidfile.running(opts.pid_file)
    if other is not None:
        raise OptionError(f"a sandbox is already running (pid {other}); `make stop` stops it")
    dev_storage = env.get("GATEWAY_TABLES_CONNECTION") == DEV_STORAGE
    reuse_azurite = check_ports(opts, azurite=dev_storage)
    opts.state.mkdir(mode=0o700, parents=True, exist_ok=True)
    for signum in SIGNALS:     # stop everything as on Ctrl-C (a hang-up only if not ignored: nohup)
        if signum != signal.SIGHUP or signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, _raise_interrupt)
    try:
        with ExitStack() as stack:
            pidfile.write(opts.pid_file)
            stack.callback(pidfile.remove, opts.pid_file)
            try:
                return _serve(stack, opts, env, reuse_azurite)
            finally:
                for signum in SIGNALS:      # a second Ctrl-C must not cut the clean-up short
                    signal.signal(signum, signal.SIG_IGN)
    except KeyboardInterrupt:
        return 0
