"""Computes what must change to make the stored configuration equal a desired one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .document import item_document
from .entities import Write, collaborator_key
from .kinds import STORED
from .model import Config

# Creates and updates in dependency order, then deletes in reverse, so that at no point does a
# stored resource refer to one that is already gone.
ORDER: tuple[str, ...] = (*(k.section for k in STORED if k.section), "collaborators")


@dataclass(frozen=True, slots=True)
class Change:
    action: str                     # create | update | delete
    section: str
    key: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def describe(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-"}[self.action]
        label = self.key.replace("\n", " -> ")
        if self.section == "collaborators":
            role = (self.after or self.before or {}).get("role")
            if self.action == "update":
                role = f"{(self.before or {}).get('role')} => {(self.after or {}).get('role')}"
            return f"{sign} collaborator {label} ({role})"
        if self.action == "update" and self.before and self.after:
            fields = sorted(k for k in {*self.before, *self.after} if self.before.get(k) != self.after.get(k))
            return f"{sign} {self.section} {label} (changed: {', '.join(fields)})"
        return f"{sign} {self.section} {label}"


def _keyed(config: Config, section: str) -> dict[str, dict[str, Any]]:
    if section == "collaborators":
        return {collaborator_key(c.resource, c.principal): item_document(c) for c in config.collaborators}
    return {item.name: item_document(item) for item in getattr(config, section)}


def plan(current: Config, desired: Config) -> list[Change]:
    creates: list[Change] = []
    deletes: list[Change] = []
    for section in ORDER:
        have, want = _keyed(current, section), _keyed(desired, section)
        for key in sorted(want):
            if key not in have:
                creates.append(Change("create", section, key, None, want[key]))
            elif have[key] != want[key]:
                creates.append(Change("update", section, key, have[key], want[key]))
        for key in sorted(set(have) - set(want)):
            deletes.append(Change("delete", section, key, have[key], None))
    deletes.sort(key=lambda c: ORDER.index(c.section), reverse=True)
    return [*creates, *deletes]


def writes(changes: list[Change]) -> list[Write]:
    return [Write(c.section, c.key, c.after) for c in changes]
