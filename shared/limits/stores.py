"""Which shared counter store this gateway uses: the one GATEWAY_LIMITS_STORE names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..settings import Settings
from .counters import CounterStore

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient


def counter_store(settings: Settings, service: TableServiceClient | None = None) -> CounterStore:
    """Table Storage (the configuration's storage account: through `service`, the gateway's one table
    client, when given) or Redis; raises SettingsError when the chosen store's settings are unusable."""
    if settings.limits_store == "redis":
        from .redis_counters import RedisCounters

        return RedisCounters.from_settings(settings)
    from .table_counters import TableCounters

    if service is not None:
        return TableCounters(service, settings.table_prefix, owns_service=False)
    return TableCounters.from_settings(settings)
