"""Keeps the configuration in Azure Table Storage: one table per resource kind under the prefix.

Each resource is one entity (PartitionKey "r", RowKey = its name, `spec` = its JSON document).
The collaborator bindings of one resource are one entity of `<prefix>bindings` (PartitionKey "b",
RowKey = the resource, e.g. `model:gpt-4o`), its principal -> role map packed as JSON in string
properties b0, b1, ...: a configuration with 100,000 bindings on 1,000 resources loads 1,000
entities, not 100,000 (table storage serves entities, not bytes, slowly). A binding's ETag is its
resource's entity's. A version entity in `<prefix>meta` changes after every write, so each process
can poll one entity to learn that it must reload.

Writing a change set (`write`): every entity is read, then written conditionally on the ETag read
(a racing writer makes it fail; the change set is undone and tried again from fresh reads, so
unconditional grants on one resource all land instead of answering 412). The caller's own
preconditions (If-Match) are checked against each fresh read. Two invariants are kept here, so
/manage and `apply` cannot get around them:

- At least one admin binding on gateway:default, once there is one, unless GATEWAY_ADMINS names
  someone: the change set that would remove the last one is refused (409). The check is made on the
  binding set as read, and the write is conditional on it, so two racing removals cannot both pass.
- No binding names a deleted resource, although a resource and its binding set live in two tables
  with no transaction across them. The protocol (see `_settle`):
    (a) deleting (or creating) a resource also empties its binding set, in the same change set;
    (b) after a change set, every resource whose binding set it wrote, or which it deleted, is read
        again; if the resource is absent, its binding set is swept (read, delete If-Match, repeat
        until absent), and a change set that had written roles there fails with 409 (undone).
  Why it holds: suppose a binding set B is present for a deleted resource R once writers stop. Let
  d be R's last deletion; its writer swept after d, and saw B absent at some time s > d. B present
  now means some write w after s created it; w wrote roles, so w's writer re-read R after w > d and
  found it absent (nothing re-created R), and swept: it too saw B absent after w. Then another write
  created B after that, and so on: there is a last write, and its writer's sweep leaves B absent. A
  contradiction, so no such B. (A grant racing the deletion either has its write swept by the
  deleter, or sees the resource gone itself and fails.) A process that dies between its write and
  its check can leave a binding set behind; (a) makes it void: a resource created under that name
  again starts with no roles.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, GatewayError, Unavailable
from ..settings import Settings
from . import audit
from .entities import (
    ANY,
    BINDINGS_PK,
    RESOURCE_PK,
    Address,
    Applied,
    Step,
    Write,
    apply_write,
    check_expected,
    drops_last_admin,
    finish_step,
    implied_revocations,
    ordered,
    plain,
    unpack,
)
from .kinds import BY_SECTION, GATEWAY, STORED, split_resource
from .model import Collaborator, Config
from .schema import ConfigError, parse_item
from .tables import Raced, Table, etag_of, service_from_settings

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

log = logging.getLogger("gateway.config.store")

SECTION_TABLE = {k.section: k.table for k in STORED if k.section and k.table}
BINDINGS_TABLE = "bindings"     # one entity per resource: its principal -> role map, packed
EXTRA_TABLES = ("bindings", "meta", "audit")   # literal: the infra tests read it
ATTEMPTS = 40                   # of a change set that racing writers keep beating


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return "unknown"


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(0.25, 0.005 * 2 ** attempt))  # noqa: S311  (jitter, not secrets)


class ConfigStore:
    def __init__(self, service: TableServiceClient, prefix: str, *, actor: str = "gateway",
                 admins: frozenset[str] = frozenset()) -> None:
        self._service = service
        self.prefix = prefix
        self.actor = actor          # who the audit trail names when a write does not say
        self.admins = admins        # GATEWAY_ADMINS: while someone is named, the last admin binding may go
        self._ready = False

    @classmethod
    def from_settings(cls, settings: Settings, *, operator: bool = False) -> ConfigStore:
        """`operator`: the CLI, run by a person; its writes are audited as `os:<user>`."""
        actor = f"os:{_os_user()}" if operator else "gateway"
        return cls(service_from_settings(settings, operator=operator), settings.table_prefix, actor=actor,
                   admins=settings.admins)

    def table_name(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    def table(self, suffix: str) -> Table:
        return Table(self._service.get_table_client(self.table_name(suffix)))

    async def ensure_tables(self) -> None:
        if self._ready:
            return
        suffixes = [*SECTION_TABLE.values(), *EXTRA_TABLES]
        await asyncio.gather(*(self.table(s).ensure() for s in suffixes))
        self._ready = True

    async def version(self) -> str:
        """An opaque token that changes whenever the configuration does."""
        entity = await self.table("meta").get("config", "version")
        return "0" if entity is None else str(entity.get("version", "0"))

    # -- reading -----------------------------------------------------------------------------------

    async def load(self) -> tuple[Config, str]:
        """The whole configuration, with the version it was read at (read first, so a later
        change is never missed)."""
        await self.ensure_tables()
        version = await self.version()
        results = await asyncio.gather(*(self._read_section(section) for section in SECTION_TABLE),
                                       self._read_collaborators())
        sections = dict(zip(SECTION_TABLE, results[:-1], strict=True))
        return Config(**sections, collaborators=results[-1]), version

    async def _read_section(self, section: str) -> tuple[Any, ...]:
        items = []
        for entity in await self.table(SECTION_TABLE[section]).query():
            where = f"table {self.table_name(SECTION_TABLE[section])}, row {entity.get('RowKey')!r}"
            try:
                items.append(parse_item(section, json.loads(entity["spec"]), where, allowlist=None))
            except (ConfigError, ValueError, KeyError) as exc:
                log.error("skipping an invalid stored resource: %s: %s", where, exc)
        return tuple(sorted(items, key=lambda i: i.name))

    async def _read_collaborators(self) -> tuple[Collaborator, ...]:
        out = []
        for e in await self.table(BINDINGS_TABLE).query():
            try:
                roles = unpack(e)
            except ValueError as exc:
                log.error("skipping the invalid stored bindings of %r: %s", e.get("RowKey"), exc)
                continue
            out += [Collaborator(resource=e["RowKey"], principal=p, role=r) for p, r in roles.items()]
        return tuple(sorted(out, key=lambda c: (c.resource, c.principal)))

    async def get(self, section: str, key: str) -> tuple[dict[str, Any], str] | None:
        """One stored resource (or binding) and its ETag, read fresh from storage. A binding's ETag
        is that of its resource's set of bindings: it changes when any binding of the resource does."""
        await self.ensure_tables()
        suffix, pk, rk = self._address(Write(section, key, None))
        entity = await self.table(suffix).get(pk, rk)
        if entity is None:
            return None
        if section == "collaborators":
            resource, _, principal = key.partition("\n")
            role = unpack(entity).get(principal)
            if role is None:
                return None
            return {"resource": resource, "principal": principal, "role": role}, etag_of(entity)
        return dict(json.loads(entity["spec"])), etag_of(entity)

    async def page(self, section: str, after: str | None, count: int
                   ) -> tuple[list[tuple[dict[str, Any], str]], bool]:
        """Up to `count` resources of a section named after `after`, by name, with their ETags, and
        whether more follow (count + 1 entities are read, no more)."""
        await self.ensure_tables()
        rows = await self.table(SECTION_TABLE[section]).query(
            "PartitionKey eq @pk and RowKey gt @after", {"pk": RESOURCE_PK, "after": after or ""},
            limit=count + 1)
        return [(dict(json.loads(e["spec"])), etag_of(e)) for e in rows[:count]], len(rows) > count

    async def list_section(self, section: str) -> list[tuple[dict[str, Any], str]]:
        """Every stored resource of a section with its ETag, by name (admin checks before deletes)."""
        await self.ensure_tables()
        rows = await self.table(SECTION_TABLE[section]).query()
        return sorted(((dict(json.loads(e["spec"])), etag_of(e)) for e in rows), key=lambda d: str(d[0].get(
            BY_SECTION[section].key, "")))

    async def binding_sets(self, start: str | None, *, inclusive: bool, count: int,
                           only: str | None = None) -> tuple[list[tuple[str, dict[str, str]]], bool]:
        """Up to `count` resources' binding sets (resource, principal -> role) from `start` on, by
        resource, and whether more follow; `only`: that resource's alone."""
        await self.ensure_tables()
        if only is not None:
            query, params = "PartitionKey eq @pk and RowKey eq @rk", {"pk": BINDINGS_PK, "rk": only}
        else:
            op = "ge" if inclusive else "gt"
            query, params = f"PartitionKey eq @pk and RowKey {op} @rk", {"pk": BINDINGS_PK, "rk": start or ""}
        rows = await self.table(BINDINGS_TABLE).query(query, params, limit=count + 1)
        return [(str(e["RowKey"]), unpack(e)) for e in rows[:count]], len(rows) > count

    async def audit_page(self, wanted: audit.Filter, after: str | None, count: int
                         ) -> tuple[list[dict[str, Any]], str | None]:
        await self.ensure_tables()
        return await audit.page(self.table("audit"), wanted, after, count)

    async def audit_trail(self, since: float | None = None) -> list[dict[str, Any]]:
        await self.ensure_tables()
        return await audit.read(self.table("audit"), since)

    # -- writing -----------------------------------------------------------------------------------

    async def write(self, writes: Iterable[Write], *, actor: str | None = None,
                    expected: dict[tuple[str, str], str | None] | None = None) -> list[Applied]:
        """Apply entity writes in the order given as one change set, record each in the audit table,
        then move the version on.

        All or nothing: when any write fails (storage refuses an entity, storage goes away, an
        invariant of the module docstring would break) the writes already made are undone in reverse
        order and the error is raised. `expected` maps (section, key) to the ETag the entity must
        still have (None: it must not exist; "*": it must exist); other writes are unconditional.
        A racing writer's change makes the change set start again from fresh reads.
        """
        await self.ensure_tables()
        batch = list(writes)
        if not batch:
            return []
        for attempt in range(ATTEMPTS):
            try:
                return await self._write_once(batch, actor or self.actor, expected or {})
            except Raced:
                await asyncio.sleep(_backoff(attempt))
        raise Unavailable("other writers kept changing the same entities; nothing was changed: retry")

    async def _write_once(self, batch: list[Write], actor: str,
                          expected: dict[tuple[str, str], str | None]) -> list[Applied]:
        steps, step_of = await self._steps(batch, expected)
        done: list[Step] = []
        try:
            for step in steps:
                step.etag_after = await self._execute(step)
                done.append(step)
            gone = await self._settle(done)
            lost = [s.rk for s in done if s.is_bindings and s.after is not None and s.rk in gone]
            if lost:
                raise Conflict(f"{lost[0]} was deleted while its collaborators were being changed; "
                               "nothing was changed")
            applied = [Applied(w.section, w.key, step_of[i].before_of(w), w.document, step_of[i].etag_after)
                       for i, w in enumerate(batch)]
            applied += [Applied(w.section, w.key, s.before_of(w), None, s.etag_after)
                        for s in steps for w in implied_revocations(s)]
            await audit.record(self.table("audit"), actor, applied)
        except BaseException:
            await self._undo(done)
            raise
        finally:
            if done:
                await self._bump_after(done)
        return applied

    def _address(self, w: Write) -> Address:
        if w.section == "collaborators":
            return BINDINGS_TABLE, BINDINGS_PK, w.key.partition("\n")[0]
        return SECTION_TABLE[w.section], RESOURCE_PK, w.key

    async def _step(self, steps: dict[Address, Step], section: str, address: Address) -> Step:
        step = steps.get(address)
        if step is None:
            suffix, pk, rk = address
            table = self.table(suffix)
            entity = await table.get(pk, rk)
            if entity is None:
                step = Step(section, table, pk, rk, None, None)
            else:
                raw = plain(entity)
                step = Step(section, table, pk, rk, raw, etag_of(entity), after=raw)
            steps[address] = step
        return step

    async def _steps(self, batch: list[Write], expected: dict[tuple[str, str], str | None]
                     ) -> tuple[list[Step], list[Step]]:
        """One step per entity: a resource, or one resource's whole binding set. Preconditions and
        the last-admin rule are checked here, on what was just read, before any write."""
        steps: dict[Address, Step] = {}
        step_of: list[Step] = []
        resets: dict[Address, Address] = {}     # a resource's address -> its binding set's
        for w in batch:
            step = await self._step(steps, w.section, self._address(w))
            check_expected(step, w, expected.get((w.section, w.key), ANY))
            kind = BY_SECTION.get(w.section)
            resource = kind.resource(w.key) if kind else None
            if resource and (w.document is None or step.before is None):
                address = self._address(Write("collaborators", f"{resource}\n", None))
                bindings = await self._step(steps, "collaborators", address)
                bindings.reset = "delete" if w.document is None else "create"
                resets[self._address(w)] = address
            apply_write(step, w)
            step_of.append(step)
        for step in steps.values():
            finish_step(step)
            if drops_last_admin(step, GATEWAY) and not self.admins:
                raise Conflict(f"that would remove the last admin binding on {GATEWAY}: grant admin to "
                               "another principal first (or name one in GATEWAY_ADMINS)")
            if step.reset == "create" and step.roles_before:
                log.warning("dropping %d binding(s) left from an earlier %s", len(step.roles_before), step.rk)
        return ordered(steps, resets), step_of

    async def _execute(self, step: Step) -> str | None:
        """One entity write, conditional on the entity being as it was read (a racing writer: Raced)."""
        if step.after is None:
            if step.etag_before is not None:
                await step.table.delete(step.pk, step.rk, step.etag_before)
            return None
        if step.etag_before is None:
            return await step.table.create(step.after)
        return await step.table.replace(step.after, step.etag_before)

    async def _undo(self, done: list[Step]) -> None:
        """Put back what this change set wrote, entity by entity, unless another writer has changed
        the entity since (theirs is newer: it stays, and the log says so)."""
        for step in reversed(done):
            try:
                if step.before is None and step.after is not None:
                    await step.table.delete(step.pk, step.rk, step.etag_after)
                elif step.before is not None and step.after is None:
                    await step.table.create(step.before)
                elif step.before is not None:
                    await step.table.replace(step.before, step.etag_after)
            except Raced:
                log.warning("not undoing the write of %s: another writer changed it since", step.describe())
            except GatewayError as exc:  # storage gone: say exactly what is left over
                log.error("could not undo the write of %s (%s): it is left as written",
                          step.describe(), exc.message)
        try:
            await self._settle(done)     # an undone creation, or a restored binding set
        except GatewayError as exc:
            log.error("could not check for bindings left on deleted resources: %s", exc.message)

    async def _settle(self, steps: list[Step]) -> set[str]:
        """Sweep the binding set of every resource these steps deleted, created or bound that does not
        exist now (the module docstring says why this leaves no binding on a deleted resource);
        the resources found missing."""
        candidates = {s.rk for s in steps if s.is_bindings}
        candidates |= {f"{BY_SECTION[s.section].prefix}:{s.rk}" for s in steps
                       if not s.is_bindings and BY_SECTION[s.section].prefix
                       and (s.before is None or s.after is None)}
        gone: set[str] = set()
        for resource in sorted(candidates):
            found = split_resource(resource)
            if found is None or found[0].table is None:       # gateway:default always exists
                continue
            if await self.table(found[0].table).get(RESOURCE_PK, found[1]) is None:
                gone.add(resource)
                await self._sweep(resource)
        return gone

    async def _sweep(self, resource: str) -> None:
        table = self.table(BINDINGS_TABLE)
        for attempt in range(ATTEMPTS):
            entity = await table.get(BINDINGS_PK, resource)
            if entity is None:
                return
            try:
                await table.delete(BINDINGS_PK, resource, etag_of(entity))
                log.info("removed the collaborators of %s, which no longer exists", resource)
                return
            except Raced:
                await asyncio.sleep(_backoff(attempt))
        raise Unavailable(f"could not remove the collaborators of deleted {resource}: too many writers")

    async def _bump_after(self, done: list[Step]) -> None:
        try:
            await self.bump_version()
        except GatewayError as exc:
            log.error("wrote %s but could not move the configuration version on: %s; processes "
                      "reload at the next change", done[0].describe(), exc.message)

    async def bump_version(self) -> str:
        table = self.table("meta")
        for attempt in range(ATTEMPTS):
            current = await table.get("config", "version")
            try:
                if current is None:
                    await table.create({"PartitionKey": "config", "RowKey": "version", "version": "1"})
                    return "1"
                new = str(int(current.get("version", "0")) + 1)
                await table.replace({"PartitionKey": "config", "RowKey": "version", "version": new},
                                    etag_of(current))
                return new
            except Raced:
                await asyncio.sleep(_backoff(attempt))
        raise Unavailable("could not move the configuration version on: too many concurrent writers")

    async def aclose(self) -> None:
        await self._service.close()
