"""Which shared counter store this gateway uses: the one GATEWAY_LIMITS_STORE names."""

from __future__ import annotations

from ..settings import Settings
from .counters import CounterStore


def counter_store(settings: Settings) -> CounterStore:
    """Table Storage (the configuration's storage account) or Redis; raises SettingsError when the
    chosen store's settings are unusable."""
    if settings.limits_store == "redis":
        from .redis_counters import RedisCounters

        return RedisCounters.from_settings(settings)
    from .table_counters import TableCounters

    return TableCounters.from_settings(settings)
