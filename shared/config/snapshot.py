"""Keeps this process's in-memory copy of the configuration current.

The first request loads it (one shared load, however many requests wait); afterwards a background
task polls the version entity every `refresh_seconds` and reloads on change. Requests never wait on
storage once warm, and a storage outage keeps the last good copy in service.

Stored accounts are held to the allowlist again here: one written before it applied, or under other
settings, is left out of the accounts requests use (so a request for a model on it fails with 503 and
nothing is sent), and the log names the account and the field to fix. Likewise a GATEWAY_ADMINS
entry that can match no caller (malformed, or naming an identity provider or external identity this
configuration lacks) grants nothing: the log and the status report name it, so an operator relying on
it learns why they are locked out of /manage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import MappingProxyType

from ..access import Policy
from ..errors import GatewayError
from .allowlist import Allowlist
from .kinds import BY_SECTION
from .model import Account, Agent, Config, McpServer, Model
from .schema import ConfigError, parse_principal, principal_reference
from .store import ConfigStore

log = logging.getLogger("gateway.config.snapshot")
_Remote = McpServer | Agent


def admin_problems(admins: Iterable[str], config: Config | None) -> tuple[str, ...]:
    """Why each GATEWAY_ADMINS entry matches no caller, one sentence per entry naming it. Without a
    configuration only the malformed entries are known."""
    problems = []
    for entry in sorted(admins):
        try:
            principal = parse_principal(entry, "GATEWAY_ADMINS")
        except ConfigError as exc:
            problems.append(f"GATEWAY_ADMINS entry {entry!r} is not a principal: {exc.problem}")
            continue
        if config is None:
            continue
        section, name = principal_reference(principal)
        if name not in {item.name for item in getattr(config, section)}:
            problems.append(f"GATEWAY_ADMINS entry {entry!r} matches no caller: no "
                            f"{BY_SECTION[section].singular} named {name!r} is configured")
    return tuple(problems)


@dataclass(frozen=True, slots=True)
class View:
    """One configuration version with the indexes the request path needs. `config` is what is stored;
    `accounts` only those the allowlist admits, and `refused` the others: name -> "field: problem";
    `admin_problems` the GATEWAY_ADMINS entries that match no caller, and why."""

    config: Config
    version: str
    loaded_at: float
    policy: Policy
    models: MappingProxyType[str, Model] = field(repr=False)
    accounts: MappingProxyType[str, Account] = field(repr=False)
    refused: MappingProxyType[str, str] = field(repr=False)
    admin_problems: tuple[str, ...] = ()
    mcp_servers: MappingProxyType[str, McpServer] = field(repr=False, default=MappingProxyType({}))
    agents: MappingProxyType[str, Agent] = field(repr=False, default=MappingProxyType({}))

    @classmethod
    def build(cls, config: Config, version: str, admins: frozenset[str], loaded_at: float, *,
              allowlist: Allowlist) -> View:
        usable: dict[str, Account] = {}
        refused: dict[str, str] = {}
        for account in config.accounts:
            problem = allowlist.account_problem(account)
            if problem is None:
                usable[account.name] = account
            else:
                refused[account.name] = f"{problem.field}: {problem.problem}"
        servers = _admitted(config.mcp_servers, "mcp-server", allowlist, refused)
        agents = _admitted(config.agents, "agent", allowlist, refused)
        return cls(config=config, version=version, loaded_at=loaded_at, policy=Policy(config, admins),
                   models=MappingProxyType({m.name: m for m in config.models}),
                   accounts=MappingProxyType(usable), refused=MappingProxyType(refused),
                   admin_problems=admin_problems(admins, config),
                   mcp_servers=MappingProxyType(servers), agents=MappingProxyType(agents))


def _admitted(items: tuple[_Remote, ...], prefix: str, allowlist: Allowlist,
              refused: dict[str, str]) -> dict[str, _Remote]:
    """The MCP servers or agents the allowlist admits by name; the others into `refused` as
    "<prefix>:<name>" (a stored one written before a setting changed is named, not served)."""
    usable = {}
    for item in items:
        problem = allowlist.remote_problem(item)
        if problem is None:
            usable[item.name] = item
        else:
            refused[f"{prefix}:{item.name}"] = f"{problem.field}: {problem.problem}"
    return usable


class Snapshot:
    def __init__(self, store: ConfigStore, *, refresh_seconds: float, admins: frozenset[str],
                 allowlist: Allowlist, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._allowlist = allowlist
        self._refresh = refresh_seconds
        self._admins = admins
        self._clock = clock
        self._view: View | None = None
        self._loading: asyncio.Future[View] | None = None
        self._poller: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.last_check: float | None = None

    @property
    def view(self) -> View | None:
        return self._view

    async def current(self) -> View:
        view = self._view
        if view is not None:
            return view
        return await self.reload()

    async def reload(self) -> View:
        """Load now; concurrent callers share one load."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
        loading = self._loading
        try:
            return await asyncio.shield(loading)
        finally:
            if loading.done() and self._loading is loading:
                self._loading = None

    async def _load(self) -> View:
        try:
            config, version = await self._store.load()
        except GatewayError as exc:
            self.last_error = exc.message
            if self._view is not None:
                log.warning("configuration reload failed, serving version %s: %s",
                            self._view.version, exc.message)
                return self._view
            raise
        view = View.build(config, version, self._admins, self._clock(), allowlist=self._allowlist)
        if self._view is None or self._view.version != version:
            log.info("configuration version %s loaded", version)
            for name, problem in view.refused.items():
                what = name if ":" in name else f"account {name}"
                log.error("%s is not used, its configuration is outside the allowlist: %s", what, problem)
            for problem in view.admin_problems:
                log.warning("%s", problem)
        self._view = view
        self.last_error = None
        self.last_check = self._clock()
        self._ensure_poller()
        return view

    async def check(self) -> bool:
        """Reload if the stored version moved on; True when it did."""
        try:
            version = await self._store.version()
        except GatewayError as exc:
            self.last_error = exc.message
            log.warning("configuration check failed, keeping version %s: %s",
                        self._view.version if self._view else "-", exc.message)
            return False
        self.last_check = self._clock()
        if self._view is not None and version == self._view.version:
            return False
        await self.reload()
        return True

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name="config-poller")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            try:
                await self.check()
            except Exception:  # the poller must outlive any one failure
                log.exception("configuration poll failed")

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
