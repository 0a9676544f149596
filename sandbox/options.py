"""The sandbox's own knobs (ports and where it keeps its state), and the check that its ports are free.

They are read here, not in shared/settings.py: they are settings of this development tooling, never
of the gateway. Like the gateway's, they come from the environment over local.settings.json's Values.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sandbox.azurite import ROOT, port_open
from shared.settings import load

DEV_STORAGE = "UseDevelopmentStorage=true"
DEFAULTS = {"SANDBOX_IDP_PORT": "7081", "SANDBOX_EMULATOR_PORT": "7082", "SANDBOX_AZURITE_PORT": "10000"}
HOSTS = ("functions", "uvicorn")
"""SANDBOX_HOST: `functions` serves function_app.py as Azure does (Core Tools' `func start` when
installed, else the host stand-in `python -m funchost`); `uvicorn` serves `python -m shared serve`."""


class OptionError(ValueError):
    """A knob is malformed or a port is taken; the message is one line naming the knob to change."""


@dataclass(frozen=True, slots=True)
class Options:
    gateway_port: int       # GATEWAY_PORT, the gateway's own setting
    idp_port: int           # SANDBOX_IDP_PORT
    emulator_port: int      # SANDBOX_EMULATOR_PORT
    azurite_port: int       # SANDBOX_AZURITE_PORT: blob; queue and table take the next two
    state: Path             # SANDBOX_DIR: signing key, token, pid file
    azurite_dir: Path       # Azurite's data
    host: str = "functions"  # SANDBOX_HOST: what serves the gateway (see HOSTS)

    @property
    def key_file(self) -> Path:
        return self.state / "idp-key.pem"

    @property
    def token_file(self) -> Path:
        return self.state / "token"

    @property
    def pid_file(self) -> Path:
        return self.state / "run.pid"

    @property
    def azurite_ports(self) -> tuple[int, int, int]:
        return self.azurite_port, self.azurite_port + 1, self.azurite_port + 2


def _port(env: Mapping[str, str], name: str, *, top: int = 65535) -> int:
    raw = (env.get(name) or DEFAULTS[name]).strip()
    if not raw.isdigit() or not 1 <= int(raw) <= top:
        raise OptionError(f"{name} must be a TCP port (1 to {top}), got {raw!r}")
    return int(raw)


def _host(env: Mapping[str, str]) -> str:
    raw = (env.get("SANDBOX_HOST") or HOSTS[0]).strip().lower()
    if raw not in HOSTS:
        raise OptionError(f"SANDBOX_HOST must be one of {', '.join(HOSTS)}, got {raw!r}")
    return raw


def options(env: Mapping[str, str]) -> Options:
    """The sandbox's options from `env`; GATEWAY_PORT is read by the gateway's settings."""
    state = env.get("SANDBOX_DIR", "").strip()
    return Options(gateway_port=load(env).port,
                   idp_port=_port(env, "SANDBOX_IDP_PORT"),
                   emulator_port=_port(env, "SANDBOX_EMULATOR_PORT"),
                   azurite_port=_port(env, "SANDBOX_AZURITE_PORT", top=65533),
                   state=Path(state).resolve() if state else ROOT / ".sandbox",
                   azurite_dir=Path(state).resolve() / "azurite" if state else ROOT / ".azurite",
                   host=_host(env))


def in_use(port: int) -> bool:
    """Something listens on the port, or binding it as our servers do (address reuse on) fails."""
    if port_open(port):
        return True
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def is_azurite_tables(port: int) -> bool:
    """The port serves Azurite's table service (one started by hand, or by another `make run`)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
            return False
    except urllib.error.HTTPError as answer:
        return answer.headers.get("Server", "").startswith("Azurite-Table")
    except (OSError, ValueError):
        return False


def check_ports(opts: Options, *, azurite: bool) -> bool:
    """Raise OptionError naming the knob of the first port taken. With `azurite`, an Azurite already
    serving tables on its port is used rather than refused; True when so."""
    wanted = [(opts.gateway_port, "GATEWAY_PORT"), (opts.idp_port, "SANDBOX_IDP_PORT"),
              (opts.emulator_port, "SANDBOX_EMULATOR_PORT")]
    running = azurite and is_azurite_tables(opts.azurite_ports[2])
    if azurite and not running:
        wanted += [(port, "SANDBOX_AZURITE_PORT") for port in opts.azurite_ports]
    seen: set[int] = set()
    for port, knob in wanted:
        if port in seen:
            raise OptionError(f"port {port} is asked for twice; set {knob} to another port")
        seen.add(port)
        if in_use(port):
            hint = " (Azurite's blob port; queue and table take the next two)" if knob.startswith(
                "SANDBOX_AZURITE") else ""
            raise OptionError(f"port {port} is in use; set {knob}{hint}")
    return running
