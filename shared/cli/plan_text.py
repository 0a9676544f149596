"""A plan as `apply` and `diff` show it: one line per created, deleted or kept entity and per changed
field, with old and new values cut short (`~ model gpt-4o: targets[0].deployment: "a" -> "b"`); and
the same as JSON for scripts. The file format holds no secrets (only the names of the environment
variables that do), so every value may be shown."""

from __future__ import annotations

from typing import Any

from ..config.plan import Change, Plan
from .output import short

SIGNS = {"create": "+", "update": "~", "delete": "-"}


def change_lines(change: Change) -> list[str]:
    sign = SIGNS[change.action]
    head = f"{sign} {change.kind} {change.label}"
    if change.action == "update":
        return [f"{head}: {f.field}: {short(f.old)} -> {short(f.new)}" for f in change.fields()] or [head]
    if change.section == "collaborators":
        return [f"{head} ({(change.after or change.before or {}).get('role')})"]
    return [head]


def plan_lines(plan: Plan) -> list[str]:
    lines = [line for change in plan.changes for line in change_lines(change)]
    lines += [f"= kept (not in file): {c.kind} {c.label}" for c in plan.kept]
    return lines


def counts(plan: Plan) -> str:
    """`2 created, 1 updated, 1 deleted`: what a plan does, in words."""
    done = {"create": "created", "update": "updated", "delete": "deleted"}
    parts = [f"{sum(c.action == action for c in plan.changes)} {word}" for action, word in done.items()]
    return ", ".join(part for part in parts if not part.startswith("0 "))


def kept_line(plan: Plan) -> str:
    return (f"{len(plan.kept)} kept: in the store but not in the file; --prune deletes them"
            if plan.kept else "")


def change_json(change: Change) -> dict[str, Any]:
    out: dict[str, Any] = {"action": change.action, "section": change.section, "kind": change.kind,
                           "name": change.label}
    if change.section == "collaborators":
        resource, _, principal = change.key.partition("\n")
        out.update(resource=resource, principal=principal)
    if change.action == "update":
        out["fields"] = [{"field": f.field, "old": f.old, "new": f.new} for f in change.fields()]
    out.update(before=change.before, after=change.after)
    return out


def plan_json(plan: Plan) -> dict[str, Any]:
    return {"changes": [change_json(c) for c in plan.changes],
            "kept": [change_json(c) | {"action": "keep"} for c in plan.kept]}
