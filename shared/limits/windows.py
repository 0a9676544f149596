"""Fixed UTC windows: a minute, hour, day or month, named by a key that changes at each rollover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_FORMATS = {"minute": "m%Y%m%d%H%M", "hour": "h%Y%m%d%H", "day": "d%Y%m%d", "month": "M%Y%m"}
WINDOWS: tuple[str, ...] = tuple(_FORMATS)


def _start(window: str, moment: datetime) -> datetime:
    if window == "minute":
        return moment.replace(second=0, microsecond=0)
    if window == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    if window == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "month":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"unknown window {window!r}")


def _next(window: str, start: datetime) -> datetime:
    if window == "month":
        return (start + timedelta(days=32)).replace(day=1)
    return start + {"minute": timedelta(minutes=1), "hour": timedelta(hours=1),
                    "day": timedelta(days=1)}[window]


# per window length: (start, end, key) of the window last asked for; admission asks several times per
# request, and formatting a date costs more than the rest of a lease's bookkeeping
_current: dict[str, tuple[float, float, str]] = {}


def key(window: str, now: float) -> str:
    """The window's name at `now` (epoch seconds), e.g. `m202612041958`: counters are keyed by it, so a
    new window starts from zero without anything being reset or deleted."""
    found = _current.get(window)
    if found is not None and found[0] <= now < found[1]:
        return found[2]
    start = _start(window, datetime.fromtimestamp(now, UTC))
    name = start.strftime(_FORMATS[window])
    _current[window] = (start.timestamp(), _next(window, start).timestamp(), name)
    return name


def seconds_left(window: str, now: float) -> float:
    """Seconds until the window that holds `now` ends (what Retry-After and x-ratelimit-reset say)."""
    moment = datetime.fromtimestamp(now, UTC)
    return max(0.0, (_next(window, _start(window, moment)) - moment).total_seconds())


def duration_text(seconds: float) -> str:
    """OpenAI's reset format: `1s`, `6m0s`, `1h2m3s` (whole seconds, rounded up; sub-second `0.5s`)."""
    if seconds < 1:
        return f"{max(seconds, 0.0):.1f}s".replace(".0s", "s") if seconds > 0 else "0s"
    total = int(-(-seconds // 1))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _unit(key_text: str) -> str:
    unit = next((w for w, fmt in _FORMATS.items() if key_text[:1] == fmt[0]), None)
    if unit is None:
        raise ValueError(f"not a window key: {key_text!r}")
    return unit


def ends_at(key_text: str) -> float:
    """When the window named `key_text` ends (epoch seconds): a store expires its counter after it."""
    unit = _unit(key_text)
    start = datetime.strptime(key_text, _FORMATS[unit]).replace(tzinfo=UTC)
    return _next(unit, start).timestamp()


def length(window: str) -> float:
    """The window's nominal length in seconds (a month counts 30 days): the denominator of a rate."""
    return {"minute": 60.0, "hour": 3600.0, "day": 86400.0, "month": 30 * 86400.0}[window]
