"""`make run`: Azurite, and unless the tables hold a configuration of the user's own, a local
sandbox (a development identity provider and an Azure OpenAI emulator) registered in the tables;
then the gateway, and a ready token with a curl and an openai SDK snippet to try it."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

from sandbox.azurite import ROOT, Azurite, port_open
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from shared.config.allowlist import Allowlist
from shared.config.plan import plan, writes
from shared.config.schema import parse
from shared.config.store import ConfigStore
from shared.settings import environment, load

IDP_PORT, EMULATOR_PORT, GATEWAY_PORT = 7081, 7082, 7071
EMULATOR_KEY = "sandbox-key"
STATE = ROOT / ".sandbox"
SANDBOX_ADMIN = "user:sandbox/sandbox-user"


def sandbox_document(idp: DevIdentityProvider, emulator_url: str, key_env: str) -> dict[str, Any]:
    return {
        "identity_providers": [{"name": "sandbox", "jwks_uri": idp.jwks_uri, "issuer": idp.issuer,
                                "audiences": ["api://ai-gateway"]}],
        "external_identities": [{"name": "sandbox-developers", "identity_provider": "sandbox",
                                 "claims": {"groups": "developers"}}],
        "accounts": [{"name": "sandbox-aoai", "kind": "azure-openai", "endpoint": emulator_url,
                      "auth": {"type": "api-key", "key_env": key_env}}],
        "models": [{"name": "gpt-4o", "targets": [{"account": "sandbox-aoai", "deployment": "gpt-4o"}]},
                   {"name": "text-embedding-3-small",
                    "targets": [{"account": "sandbox-aoai", "deployment": "text-embedding-3-small"}]}],
        "collaborators": [
            {"resource": "model:gpt-4o", "principal": "identity:sandbox-developers", "role": "viewer"},
            {"resource": "model:text-embedding-3-small", "principal": "identity:sandbox-developers",
             "role": "viewer"}],
    }


async def register(doc: dict[str, Any], env: dict[str, str]) -> bool:
    """Write the sandbox configuration unless the tables hold the user's own; True if written. `env`
    is the gateway's: its allowlist (plain http on loopback for the emulator) is the one applied."""
    settings = load(env)
    store = ConfigStore.from_settings(settings)
    try:
        current, _ = await store.load()
        own = [p.name for p in current.identity_providers if p.name != "sandbox"]
        if own:
            print(f"The tables hold your own configuration (identity providers: {', '.join(own)}): "
                  "the sandbox is not started.")
            return False
        await store.write(writes(plan(current, parse(doc, allowlist=Allowlist.from_settings(settings)))))
        return True
    finally:
        await store.aclose()


def banner(token: str, gateway: str) -> str:
    return f"""
================ AI gateway: local sandbox ================
Gateway:   {gateway}   (models: gpt-4o, text-embedding-3-small; /manage as {SANDBOX_ADMIN})
Token (valid 24 h, also in .sandbox/token):

{token}

Try it:

curl -s {gateway}/v1/chat/completions \\
  -H "Authorization: Bearer $(cat .sandbox/token)" \\
  -H "Content-Type: application/json" \\
  -d '{{"model": "gpt-4o", "messages": [{{"role": "user", "content": "Hello"}}]}}'

python - <<'PY'
from openai import OpenAI
client = OpenAI(base_url="{gateway}/v1", api_key=open(".sandbox/token").read())
print(client.chat.completions.create(model="gpt-4o",
      messages=[{{"role": "user", "content": "Hello"}}]).choices[0].message.content)
PY
Press Ctrl-C to stop.
============================================================
"""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox")
    parser.add_argument("--port", type=int, default=GATEWAY_PORT)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # stop everything on SIGTERM as on Ctrl-C
    STATE.mkdir(exist_ok=True)
    env = environment()
    env.setdefault("GATEWAY_TABLES_CONNECTION", "UseDevelopmentStorage=true")
    os.environ.update({k: v for k, v in env.items() if k.startswith(("GATEWAY_", "AZURE"))})

    azurite = None
    if env["GATEWAY_TABLES_CONNECTION"] == "UseDevelopmentStorage=true" and not port_open(10002):
        azurite = Azurite(ROOT / ".azurite", table_port=10002, tables_only=False).start()
        print("Azurite started on 127.0.0.1:10000-10002 (data in .azurite/)")

    with BackgroundLoop() as loop:
        idp = DevIdentityProvider(port=IDP_PORT, key_file=STATE / "idp-key.pem")
        emulator = AzureOpenAIEmulator(port=EMULATOR_PORT, api_key=EMULATOR_KEY, chunk_interval=0.03)
        loop.run(idp.start())
        loop.run(emulator.start())
        gateway_env = {**os.environ, "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK": "true"}
        # the gateway reads only variables with its secret prefix (GATEWAY_SECRET_ unless set otherwise)
        key_env = f"{load(gateway_env).secret_env_prefix}SANDBOX_AOAI_KEY"
        gateway_env[key_env] = EMULATOR_KEY
        sandboxed = asyncio.run(register(sandbox_document(idp, emulator.url, key_env), gateway_env))
        if sandboxed and not gateway_env.get("GATEWAY_ADMINS"):
            gateway_env["GATEWAY_ADMINS"] = SANDBOX_ADMIN   # so /manage works with the printed token
        if shutil.which("func"):
            command = ["func", "start", "--port", str(args.port)]
        else:
            command = [sys.executable, "-m", "shared", "serve", "--port", str(args.port)]
        gateway = subprocess.Popen(command, cwd=ROOT, env=gateway_env)
        try:
            deadline = time.monotonic() + 60
            while not port_open(args.port):
                if gateway.poll() is not None or time.monotonic() > deadline:
                    print("the gateway did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
            if sandboxed:
                token = idp.mint("sandbox-user", claims={"groups": ["developers"], "email": "dev@localhost"},
                                 audience="api://ai-gateway", expires_in=86400)
                (STATE / "token").write_text(token)
                print(banner(token, f"http://127.0.0.1:{args.port}"), flush=True)
            return gateway.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            if gateway.poll() is None:
                gateway.send_signal(signal.SIGINT)
                try:
                    gateway.wait(10)
                except subprocess.TimeoutExpired:
                    gateway.kill()
            loop.run(emulator.stop())
            loop.run(idp.stop())
            if azurite:
                azurite.stop()


if __name__ == "__main__":
    sys.exit(main())
