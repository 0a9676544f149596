"""Reports the health this process sees: configuration, each provider's keys, each account's token,
the settings that cannot work as meant (a GATEWAY_ADMINS entry that matches no caller), and the rate
limit and budget buckets near their limits."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from .config.snapshot import admin_problems
from .errors import GatewayError

if TYPE_CHECKING:
    from .runtime import Gateway


async def _timer_report(gw: Gateway) -> dict[str, Any] | None:
    try:
        return await gw.health.last_report()
    except Exception as exc:
        return {"ok": False, "error": f"could not read the health table ({type(exc).__name__})"}


async def status(gw: Gateway) -> dict[str, Any]:
    snapshot = gw.snapshot
    try:
        view = await snapshot.current()
    except GatewayError as exc:
        return {"ok": False, "time": time.time(),
                "configuration": {"version": None, "error": exc.message},
                "problems": list(admin_problems(gw.settings.admins, None)),
                "identity_providers": {}, "accounts": {}, "last_prewarm": gw.last_prewarm,
                "last_timer_run": None, "limits": gw.limiter.status()}
    providers: dict[str, Any] = {}
    for name, keys in gw.authenticator.key_status(view.config).items():
        providers[name] = ({"usable": False, "kids": [], "fetched_at": None, "age_seconds": None,
                            "stale": False, "last_error": "keys not fetched yet", "fetches": 0}
                           if keys is None else
                           {k: v for k, v in dataclasses.asdict(keys).items() if k != "provider"})
    accounts = gw.credentials.status(view.config.accounts)
    ok = (snapshot.last_error is None and not view.admin_problems
          and all(p["usable"] for p in providers.values())
          and all(a.get("error") is None for a in accounts.values()))
    return {
        "ok": ok,
        "time": time.time(),
        "configuration": {"version": view.version, "loaded_at": view.loaded_at,
                          "last_check": snapshot.last_check, "error": snapshot.last_error},
        "problems": list(view.admin_problems),
        "identity_providers": providers,
        "accounts": accounts,
        "last_prewarm": gw.last_prewarm,
        "last_timer_run": await _timer_report(gw),
        "limits": gw.limiter.status(),
    }


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _when(epoch: float | None, now: float) -> str:
    """An ISO-8601 UTC time, with how far it is from now for the reader."""
    if not epoch:
        return "-"
    delta = epoch - now
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    return f"{stamp} ({f'in {_age(delta)}' if delta >= 0 else f'{_age(-delta)} ago'})"


def _limits_lines(limits: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The buckets near their limits, per rule (none: one line saying so)."""
    if not limits:
        return ["", "limits: no bucket near its limit"]
    lines = ["", f"{'rule':<28} {'bucket':<48} {'used / limit':>24}  resets in"]
    for rule, buckets in sorted(limits.items()):
        for b in buckets:
            usage = f"{b['used']} / {b['limit']} {b['metric']}/{b['window']}"
            lines.append(f"{rule:<28} {b['bucket']:<48} {usage:>24}  {b['resets_in']}")
    return lines


def render(report: dict[str, Any]) -> str:
    """The report as a table a person reads in a terminal."""
    now = report.get("time") or time.time()
    config = report["configuration"]
    lines = [f"gateway: {'OK' if report['ok'] else 'DEGRADED'}",
             f"configuration: version {config.get('version')}"
             + (f"  error: {config['error']}" if config.get("error") else ""),
             *(f"problem: {problem}" for problem in report.get("problems") or ()), "",
             f"{'identity provider':<24} {'keys':>4}  {'age':>8}  {'state':<6}  {'source':<8}  last error"]
    for name, p in sorted(report["identity_providers"].items()):
        state = "stale" if p.get("stale") else ("ok" if p.get("usable") else "none")
        lines.append(f"{name:<24} {len(p.get('kids') or []):>4}  {_age(p.get('age_seconds')):>8}  "
                     f"{state:<6}  {p.get('origin') or '-':<8}  {p.get('last_error') or '-'}")
    lines += ["", f"{'account':<24} {'auth':<18} {'token expires':<32}  last error (field to fix)"]
    for name, a in sorted(report["accounts"].items()):
        error = a.get("error") or "-"
        if a.get("field"):
            error += f" ({a['field']})"
        lines.append(f"{name:<24} {a.get('auth') or '-':<18} {_when(a.get('expires_on'), now):<32}  {error}")
    lines += _limits_lines(report.get("limits") or {})
    timer = report.get("last_timer_run")
    lines += ["", "last timer run: " + ("none recorded" if not timer else
                                        f"{_when(timer.get('started_at'), now)}, "
                                        f"{'ok' if timer.get('ok') else 'with failures'}")]
    if timer and not timer.get("ok"):
        lines += [f"  {kind} {name}: {entry['error']}" for kind in ("identity_providers", "accounts")
                  for name, entry in sorted((timer.get(kind) or {}).items()) if entry.get("error")]
        if timer.get("error"):
            lines.append(f"  {timer['error']}")
    return "\n".join(lines)
