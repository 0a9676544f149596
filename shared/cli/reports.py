"""The `prewarm` and `explain` reports for people: tables and ISO-8601 times. With `--output json` the
commands print the reports themselves (those of the timer and of /manage/explain)."""

from __future__ import annotations

from typing import Any

from .output import iso, table


def _ok(flag: Any) -> str:
    return "ok" if flag else "FAILED"


def render_prewarm(report: dict[str, Any]) -> str:
    config = report.get("config") or {}
    lines = [f"prewarm: {'OK' if report.get('ok') else 'FAILED'} "
             f"(started {iso(report.get('started_at'))}, {report.get('seconds', '-')} s)",
             f"configuration: version {config.get('version', '-')}"
             + (f"  error: {config['error']}" if config.get("error") else "")]
    for kind, title in (("identity_providers", "identity provider"), ("accounts", "account")):
        entries = sorted((report.get(kind) or {}).items())
        if entries:
            rows = [(name, _ok(e.get("ok")), e.get("error") or e.get("note")) for name, e in entries]
            lines += ["", table((title, "result", "error"), rows)]
    if report.get("stored_keys_error"):
        lines += ["", report["stored_keys_error"]]
    return "\n".join(lines)


def _granted(report: dict[str, Any]) -> str:
    """", bound to team:N (member as identity:x)": which of the caller's principals gave the role."""
    who = report.get("role_principal")
    if not report.get("role") or not who:
        return ""
    member = report.get("role_member")
    return f", bound to {who}" + (f" (member as {member})" if member else "")


def render_explain(report: dict[str, Any]) -> str:
    role = report.get("role")
    via = report.get("role_via")
    lines = [f"allowed: {'yes' if report.get('allowed') else 'no'}"
             + (f"  ({report['reason']})" if report.get("reason") else ""),
             f"resource: {report.get('resource')}",
             f"principal: {report.get('principal') or '-'}",
             f"identities: {', '.join(report.get('identities') or []) or '-'}",
             f"teams: {', '.join(report.get('teams') or []) or '-'}",
             f"role: {role or '-'}" + (f" via {via}" if role and via else "") + _granted(report)]
    if report.get("provider"):
        lines.append(f"provider: {report['provider']}"
                     + (f" ({report['provider_reason']})" if report.get("provider_reason") else ""))
    key = report.get("key")
    if key:
        lines.append(f"key: kid {key.get('kid') or '-'}, {key.get('alg')}, {key.get('state')}, "
                     f"{key.get('age_seconds')} s old, from {key.get('jwks_uri')}")
    checks = report.get("checks") or []
    if checks:
        lines += ["", table(("check", "result", "detail"),
                            [(c.get("check"), "pass" if c.get("passed") else "FAIL", c.get("detail") or "")
                             for c in checks])]
    return "\n".join(lines)
