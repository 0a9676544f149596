"""Lays the configuration out as table entities, and computes what one change does to an entity.

A resource is one entity (PartitionKey "r", RowKey its name, `spec` its JSON document). The bindings
of one resource are one entity (PartitionKey "b", RowKey the resource), its principal -> role map
packed as JSON in string properties b0, b1, ... of at most CHUNK_CHARS each. A change set's steps are
checked against the caller's preconditions (`check_expected`) and ordered (`ordered`) here too. No
I/O here: the store reads and writes what this module describes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import PreconditionFailed

BINDINGS_PK = "b"
CHUNK_CHARS = 30_000            # per string property (64 KiB of UTF-16); an entity holds at most 1 MiB
RESOURCE_PK = "r"
MAX_SPEC_CHARS = 32 * 1024     # Azure Tables: a string property holds at most 64 KiB of UTF-16


Address = tuple[str, str, str]  # (table suffix, PartitionKey, RowKey)
ANY = object()                  # no precondition on a write


@dataclass(frozen=True, slots=True)
class Write:
    """One entity-level change: `document` None means delete."""

    section: str                 # a stored kind's section, or "collaborators"
    key: str                     # resource name, or "<resource>\n<principal>" for collaborators
    document: dict[str, Any] | None


@dataclass(slots=True)
class Applied:
    """A write as made: what the entity was before, what it is now, and its new ETag."""

    section: str
    key: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    etag: str | None


@dataclass(slots=True)
class Step:
    """One entity about to be written: as read (`before`, properties only) and as it will be.

    A binding set's step collects the batch's role changes and packs them at `finish_step`. `reset`
    marks the binding set of a resource the batch creates ("create": roles left by an earlier life
    of the name are void and dropped) or deletes ("delete": its roles go with it)."""

    section: str
    table: Any
    pk: str
    rk: str
    before: dict[str, Any] | None
    etag_before: str | None
    after: dict[str, Any] | None = None
    etag_after: str | None = None
    changes: dict[str, str | None] = field(default_factory=dict)   # principal -> new role, None: revoke
    reset: str | None = None
    roles_before: dict[str, str] = field(default_factory=dict)
    roles_after: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.is_bindings and self.before:
            self.roles_before = unpack(self.before)

    @property
    def is_bindings(self) -> bool:
        return self.section == "collaborators"

    def before_of(self, w: Write) -> dict[str, Any] | None:
        """The document `w` replaces, as it was read."""
        if self.before is None:
            return None
        if w.section == "collaborators":
            if self.reset == "create":
                return None
            resource, _, principal = w.key.partition("\n")
            role = self.roles_before.get(principal)
            return None if role is None else {"resource": resource, "principal": principal, "role": role}
        return dict(json.loads(self.before["spec"]))

    def describe(self) -> str:
        if self.is_bindings:
            return f"the bindings of {self.rk}"
        return f"{self.section} {self.rk!r}"


def plain(entity: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(entity).items() if k != "Timestamp"}


def pack(roles: dict[str, str]) -> dict[str, str]:
    """A principal -> role map as string properties b0, b1, ... of at most CHUNK_CHARS each."""
    text = json.dumps(roles, sort_keys=True, separators=(",", ":"))
    starts = range(0, len(text), CHUNK_CHARS)
    return {f"b{i}": text[start:start + CHUNK_CHARS] for i, start in enumerate(starts)}


def unpack(entity: Any) -> dict[str, str]:
    parts, i = [], 0
    while f"b{i}" in entity:
        parts.append(entity[f"b{i}"])
        i += 1
    return dict(json.loads("".join(parts))) if parts else {}


def apply_write(step: Step, w: Write) -> None:
    """Make `w` on the entity the step will write (a binding set is packed once, at the end)."""
    if w.section != "collaborators":
        step.after = None if w.document is None else {
            "PartitionKey": step.pk, "RowKey": step.rk, "spec": encode_spec(w.document)}
        return
    principal = w.key.partition("\n")[2]
    step.changes[principal] = None if w.document is None else str(w.document["role"])


def finish_step(step: Step) -> None:
    """Pack a binding set's roles: those read (none after a reset), with the batch's changes made."""
    if not step.is_bindings:
        return
    roles = {} if step.reset else dict(step.roles_before)
    for principal, role in step.changes.items():
        if role is None:
            roles.pop(principal, None)
        else:
            roles[principal] = role
    step.roles_after = roles
    step.after = {"PartitionKey": step.pk, "RowKey": step.rk, **pack(roles)} if roles else None


def implied_revocations(step: Step) -> list[Write]:
    """The bindings a resource's deletion takes with it beyond those the batch revokes itself."""
    if step.reset != "delete":
        return []
    return [Write("collaborators", collaborator_key(step.rk, p), None)
            for p in sorted(step.roles_before) if p not in step.changes]


def drops_last_admin(step: Step, gateway: str) -> bool:
    """The step takes the last admin binding off `gateway` (there was one, and none is left)."""
    return (step.is_bindings and step.rk == gateway and "admin" in step.roles_before.values()
            and "admin" not in step.roles_after.values())


def encode_spec(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def label_of(w: Write) -> str:
    if w.section == "collaborators":
        return "the binding " + w.key.replace("\n", " -> ")
    return f"{w.section} {w.key!r}"


def collaborator_key(resource: str, principal: str) -> str:
    return f"{resource}\n{principal}"


def check_expected(step: Step, w: Write, condition: object) -> None:
    """The caller's If-Match / If-None-Match on `w`, against the entity as just read."""
    if condition is ANY:
        return
    exists = step.before_of(w) is not None
    if condition == "*" and not exists:
        raise PreconditionFailed(f"{label_of(w)} does not exist (If-Match: *)")
    if condition is None and exists:
        raise PreconditionFailed(f"{label_of(w)} already exists (If-None-Match: *)")
    if condition not in ("*", None) and (not exists or condition != step.etag_before):
        raise PreconditionFailed(f"{label_of(w)} has changed since it was read: "
                                 "read it again and retry with its new ETag")


def ordered(steps: dict[Address, Step], resets: dict[Address, Address]) -> list[Step]:
    """Steps in batch order, except that a created or deleted resource's binding set is emptied
    before the resource is written: no reader sees old roles on a new resource."""
    out: list[Step] = []
    emitted: set[Address] = set()
    for address in steps:
        for first in (resets.get(address), address):
            if first is not None and first not in emitted:
                emitted.add(first)
                out.append(steps[first])
    return out
