"""The composition root: builds this process's one Gateway from settings, lazily, inside the loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import logsafe, telemetry
from .auth.authenticator import Authenticator
from .auth.graph import GroupDirectory
from .config.allowlist import Allowlist
from .config.snapshot import Snapshot
from .config.store import ConfigStore
from .config.tables import service_from_settings
from .errors import SETTINGS_INVALID, Unavailable
from .health import HealthStore
from .heap import settle_heap
from .keeper import keep
from .limits.admission import Limiter
from .limits.prices import price_book
from .objects.store import ObjectStore
from .remote.services import RemoteServices
from .settings import Settings, SettingsError, load
from .upstream.credentials import Credentials
from .upstream.forward import Forwarder
from .upstream.graph_token import graph_headers
from .upstream.outbound import Outbound
from .upstream.usage import UsageRecorder

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

log = logging.getLogger("gateway.runtime")


@dataclass(slots=True)
class Gateway:
    settings: Settings
    store: ConfigStore
    snapshot: Snapshot
    authenticator: Authenticator
    credentials: Credentials
    forwarder: Forwarder
    usage: UsageRecorder
    health: HealthStore
    allowlist: Allowlist
    limiter: Limiter
    remote: RemoteServices
    objects: ObjectStore
    graph: Credentials | None = None      # the gateway's own Graph token (group overage lookups)
    last_prewarm: dict[str, Any] | None = None
    keeper: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, settings: Settings, *, operator: bool = False) -> Gateway:
        """`operator`: the CLI on an operator's machine reaches the tables as them (az login), the app
        with its managed identity."""
        service = service_from_settings(settings, operator=operator)   # one client for every table
        store = ConfigStore(service, settings.table_prefix, admins=settings.admins)
        health = HealthStore(service, settings.table_prefix)
        allowlist = Allowlist.from_settings(settings)   # what accounts may name: read once
        credentials = Credentials(allowlist=allowlist)
        snapshot = Snapshot(store, refresh_seconds=settings.config_refresh_seconds, admins=settings.admins,
                            allowlist=allowlist)
        headers, graph = graph_headers(settings.graph_url, settings.azure_client_id, allowlist)
        return cls(
            settings=settings,
            store=store,
            snapshot=snapshot,
            authenticator=Authenticator.from_settings(settings, load_saved_keys=health.load_keys,
                                                      groups=GroupDirectory(settings.graph_url, headers)),
            credentials=credentials,
            forwarder=Forwarder(credentials=credentials, timeout_seconds=settings.upstream_timeout_seconds,
                                allow_http_loopback=settings.allow_http_loopback),
            usage=UsageRecorder(lambda: service_from_settings(settings, operator=operator),
                                settings.table_prefix, prices=lambda: price_book(snapshot.view)),
            health=health,
            allowlist=allowlist,
            limiter=limiter(settings, service),
            remote=RemoteServices.build(settings, allowlist, service),
            objects=ObjectStore(service, settings.table_prefix),
            graph=graph,
        )

    def charge(self, out: Outbound, usage: Mapping[str, object] | None) -> None:
        """The forwarder's usage sink: settles the request's rate limits and budgets, and records it."""
        try:
            if out.ticket is not None:
                out.ticket.settle(usage)
        finally:
            self.usage.charge(out, usage)

    async def aclose(self) -> None:
        if self.keeper is not None:
            self.keeper.cancel()
        await self.forwarder.aclose()     # first: streams still being drained charge their usage
        await self.remote.aclose()
        await self.usage.aclose()
        await self.limiter.aclose()
        await self.snapshot.aclose()
        await self.authenticator.aclose()
        await self.credentials.aclose()
        if self.graph is not None:
            await self.graph.aclose()
        await self.store.aclose()


def limiter(settings: Settings, service: TableServiceClient) -> Limiter:
    """This process's limiter, on the shared counters that GATEWAY_LIMITS_STORE names: on Table Storage
    through the gateway's one table client (no connection is made until a rule first needs a grant)."""
    from .limits.stores import counter_store

    return Limiter(counter_store(settings, service), default_max_tokens=settings.limits_default_max_tokens)


_gateway: Gateway | None = None
_lock: asyncio.Lock | None = None


def configure_logging(settings: Settings) -> None:
    """The gateway's level, a stderr handler if the host has none, and escaping of control characters
    on every handler (log lines carry paths and token claims)."""
    logger = logging.getLogger("gateway")
    logger.setLevel(settings.log_level)
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every storage call at INFO
    if not logging.getLogger().handlers and not logger.handlers:
        logger.addHandler(logsafe.stream_handler())
    logsafe.install()


async def gateway(*, operator: bool = False) -> Gateway:
    """This process's Gateway; a settings error becomes 503 naming the setting to fix. `operator`:
    built for the CLI (see `Gateway.build`)."""
    global _gateway, _lock
    if _gateway is not None:
        return _gateway
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:  # guards construction only, which does no I/O
        if _gateway is None:
            try:
                settings = load()
                configure_logging(settings)
                log.info("telemetry: %s", telemetry.configure(settings))
                logsafe.install()       # the exporters' handlers too
                _gateway = Gateway.build(settings, operator=operator)
                settle_heap()
                _gateway.keeper = asyncio.get_running_loop().create_task(keep(_gateway), name="keeper")
            except SettingsError as exc:
                log.error("gateway settings: %s", exc)
                raise Unavailable(f"gateway settings: {exc}", public=SETTINGS_INVALID) from None
    return _gateway


async def shutdown() -> None:
    global _gateway
    if _gateway is not None:
        await _gateway.aclose()
        _gateway = None
