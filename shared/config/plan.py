"""Computes what must change to make the stored configuration equal a desired one, field by field, and
which deletions an operator must have asked for (`--prune`) or confirmed (`--yes`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .document import item_document
from .entities import Write, collaborator_key
from .kinds import BY_SECTION, STORED
from .model import Config

# Creates and updates in dependency order, then deletes in reverse, so that at no point does a
# stored resource refer to one that is already gone: a binding goes before its resource and its
# principal's identity, a model before its account and workspace. The store's own rules then hold
# at every step (a deleted resource's bindings are already gone; the last admin binding on the
# gateway is checked on the whole change set).
ORDER: tuple[str, ...] = (*(k.section for k in STORED if k.section), "collaborators")
DELETE_LIMIT = 5
"""More deletions than this in one apply need --yes (or a confirmation at a terminal)."""


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One changed member of a document: `field` is its path (`targets[0].deployment`); `old` or
    `new` is None when the member is absent (documents leave defaults out, and hold no nulls)."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class Change:
    action: str                     # create | update | delete
    section: str
    key: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @property
    def kind(self) -> str:
        """For people: `model`, `identity provider`, `collaborator`."""
        return "collaborator" if self.section == "collaborators" else BY_SECTION[self.section].singular

    @property
    def label(self) -> str:
        """The entity's name; a binding's is `<principal> on <resource>`."""
        if self.section == "collaborators":
            resource, _, principal = self.key.partition("\n")
            return f"{principal} on {resource}"
        return self.key

    def fields(self) -> list[FieldChange]:
        """What an update changes, member by member."""
        return field_changes(self.before, self.after) if self.action == "update" else []


def field_changes(before: Any, after: Any, path: str = "") -> list[FieldChange]:
    """The members that differ. Mappings and lists of mappings are compared member by member; any
    other value (a string, a list of strings) is one member."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[FieldChange] = []
        for key in sorted({*before, *after}):
            out += field_changes(before.get(key), after.get(key), f"{path}.{key}" if path else key)
        return out
    if _records(before) and _records(after):
        out = []
        for i in range(max(len(before), len(after))):
            old = before[i] if i < len(before) else None
            new = after[i] if i < len(after) else None
            out += field_changes(old, new, f"{path}[{i}]")
        return out
    return [] if before == after else [FieldChange(path, before, after)]


def _records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _keyed(config: Config, section: str) -> dict[str, dict[str, Any]]:
    if section == "collaborators":
        return {collaborator_key(c.resource, c.principal): item_document(c) for c in config.collaborators}
    return {item.name: item_document(item) for item in getattr(config, section)}


def plan(current: Config, desired: Config) -> list[Change]:
    """Every change that makes `current` equal `desired`, deletions included, in the order to write."""
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


@dataclass(frozen=True, slots=True)
class Plan:
    """What `apply` of a file writes (`changes`, in order), and what it leaves alone although the
    file lacks it (`kept`: deletions that only `--prune` makes)."""

    changes: tuple[Change, ...]
    kept: tuple[Change, ...]
    emptied: tuple[str, ...]        # sections every stored entity of which `changes` deletes

    @property
    def deletes(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action == "delete")

    def confirmation_needed(self, limit: int = DELETE_LIMIT) -> str | None:
        """Why these deletions need the operator's explicit yes (many, or a whole kind), or None."""
        count = len(self.deletes)
        if count > limit:
            return f"it deletes {count} entities (more than {limit})"
        if self.emptied:
            kinds = ", ".join(_plural(section) for section in self.emptied)
            return f"it deletes every one of the stored {kinds}"
        return None


def _plural(section: str) -> str:
    return "collaborators" if section == "collaborators" else section.replace("_", " ")


def plan_apply(current: Config, desired: Config, *, prune: bool) -> Plan:
    """`apply` of `desired`: creates and updates always; deletions of what the file lacks only when
    `prune`, else they are kept (and reported)."""
    changes = plan(current, desired)
    deletes = [c for c in changes if c.action == "delete"]
    if not prune:
        return Plan(tuple(c for c in changes if c.action != "delete"), tuple(deletes), ())
    stored = {section: len(getattr(current, section)) for section in ORDER}
    emptied = tuple(section for section in ORDER
                    if stored[section] and sum(c.section == section for c in deletes) == stored[section])
    return Plan(tuple(changes), (), emptied)


def is_empty(config: Config) -> bool:
    """The file holds nothing at all (an empty or truncated file, or only empty sections)."""
    return not any(getattr(config, section) for section in ORDER)


def writes(changes: list[Change] | tuple[Change, ...]) -> list[Write]:
    return [Write(c.section, c.key, c.after) for c in changes]
