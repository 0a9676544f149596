"""Keeps the configuration in Azure Table Storage: one table per resource kind under the prefix.

Each resource is one entity (PartitionKey "r", RowKey = its name, `spec` = its JSON document).
The collaborator bindings of one resource are one entity of `<prefix>bindings` (PartitionKey "b",
RowKey = the resource, e.g. `model:gpt-4o`), its principal -> role map packed as JSON in string
properties b0, b1, ...: a configuration with 100,000 bindings on 1,000 resources loads 1,000
entities, not 100,000 (table storage serves entities, not bytes, slowly). A binding's ETag is its
resource's entity's. Every write of a change set is conditional on the entity read just before it,
and a failed change set is undone (`write`). A version entity in `<prefix>meta` changes after every
write, so each process can poll one entity to learn that it must reload.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import STORAGE_UNAVAILABLE, GatewayError, InvalidRequest, PreconditionFailed, Unavailable
from ..settings import Settings
from .entities import (
    BINDINGS_PK,
    RESOURCE_PK,
    Applied,
    Step,
    Write,
    apply_write,
    finish_step,
    label_of,
    plain,
    unpack,
)
from .model import KINDS, Collaborator, Config
from .schema import ConfigError, parse_item
from .tables import service_from_settings

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient, TableServiceClient

log = logging.getLogger("gateway.config")

SECTION_TABLE = {section: suffix for section, suffix, _ in KINDS}
BINDINGS_TABLE = "bindings"     # one entity per resource: its principal -> role map, packed
EXTRA_TABLES = ("bindings", "meta", "audit")   # literal: the infra tests read it
_ANY = object()                # no precondition on a write


def _write_error(exc: BaseException) -> BaseException:
    """Why a change set failed, as the caller should see it; nothing of it is left written."""
    if isinstance(exc, GatewayError) or not isinstance(exc, Exception):
        return exc
    text = str(exc)
    if any(w in text for w in ("exceeds the maximum allowed size", "EntityTooLarge",
                               "PropertyValueTooLarge")):
        return InvalidRequest("a resource is too large for table storage (at most 32 KiB of JSON); "
                              "nothing was changed")
    return _unavailable("write the configuration (nothing was changed)", exc)


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return "unknown"


class ConfigStore:
    def __init__(self, service: TableServiceClient, prefix: str, *, actor: str = "gateway") -> None:
        self._service = service
        self.prefix = prefix
        self.actor = actor          # who the audit trail names when a write does not say
        self._ready = False

    @classmethod
    def from_settings(cls, settings: Settings, *, operator: bool = False) -> ConfigStore:
        """`operator`: the CLI, run by a person; its writes are audited as `os:<user>`."""
        actor = f"os:{_os_user()}" if operator else "gateway"
        return cls(service_from_settings(settings, operator=operator), settings.table_prefix, actor=actor)

    def table_name(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    def table(self, suffix: str) -> TableClient:
        return self._table(suffix)

    def _table(self, suffix: str) -> TableClient:
        return self._service.get_table_client(self.table_name(suffix))

    async def ensure_tables(self) -> None:
        if self._ready:
            return
        suffixes = [*SECTION_TABLE.values(), *EXTRA_TABLES]
        try:
            await asyncio.gather(*(self._service.create_table_if_not_exists(self.table_name(s))
                                   for s in suffixes))
        except Exception as exc:
            raise _unavailable("create the configuration tables", exc) from exc
        self._ready = True

    async def version(self) -> str:
        """An opaque token that changes whenever the configuration does."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = await self._table("meta").get_entity("config", "version")
        except ResourceNotFoundError:
            return "0"
        except Exception as exc:
            raise _unavailable("read the configuration version", exc) from exc
        return str(entity.get("version", "0"))

    async def load(self) -> tuple[Config, str]:
        """The whole configuration, with the version it was read at (read first, so a later
        change is never missed)."""
        await self.ensure_tables()
        version = await self.version()
        try:
            results = await asyncio.gather(
                *(self._read_section(section) for section in SECTION_TABLE),
                self._read_collaborators())
        except Exception as exc:
            raise _unavailable("read the configuration tables", exc) from exc
        sections = dict(zip(SECTION_TABLE, results[:-1], strict=True))
        return Config(**sections, collaborators=results[-1]), version

    async def _read_section(self, section: str) -> tuple[Any, ...]:
        items = []
        async for entity in self._table(SECTION_TABLE[section]).list_entities():
            where = f"table {self.table_name(SECTION_TABLE[section])}, row {entity.get('RowKey')!r}"
            try:
                items.append(parse_item(section, json.loads(entity["spec"]), where, allowlist=None))
            except (ConfigError, ValueError, KeyError) as exc:
                log.error("skipping an invalid stored resource: %s: %s", where, exc)
        return tuple(sorted(items, key=lambda i: i.name))

    async def _read_collaborators(self) -> tuple[Collaborator, ...]:
        out = []
        async for e in self._table(BINDINGS_TABLE).list_entities():
            resource = e["RowKey"]
            out += [Collaborator(resource=resource, principal=p, role=r) for p, r in unpack(e).items()]
        return tuple(sorted(out, key=lambda c: (c.resource, c.principal)))

    async def write(self, writes: Iterable[Write], *, actor: str | None = None,
                    expected: dict[tuple[str, str], str | None] | None = None) -> list[Applied]:
        """Apply entity writes in the order given as one change set, record each in the audit table,
        then move the version on.

        All or nothing: when any write fails (storage refuses an entity, an ETag precondition fails,
        storage goes away), the writes already made are undone in reverse order, from the values read
        just before, and the error is raised. `expected` maps (section, key) to the ETag the entity
        must still have (None: it must not exist); other writes are unconditional.
        """
        from ..manage import audit as audit_log

        await self.ensure_tables()
        batch = list(writes)
        if not batch:
            return []
        expected = expected or {}
        try:
            steps, step_of = await self._steps(batch, expected)
        except GatewayError:
            raise
        except Exception as exc:
            raise _unavailable("read the configuration before writing (nothing was changed)", exc) from exc
        done: list[Step] = []
        try:
            for step in steps:
                step.etag_after = await self._execute(step)
                done.append(step)
            applied = [Applied(w.section, w.key, step_of[i].before_of(w), w.document, step_of[i].etag_after)
                       for i, w in enumerate(batch)]
            await audit_log.record(self, actor or self.actor, applied)
        except BaseException as exc:
            await self._undo(done)
            raise _write_error(exc) from exc
        finally:
            if done:
                await self.bump_version()
        return applied

    def _address(self, w: Write) -> tuple[TableClient, str, str]:
        if w.section == "collaborators":
            return self._table(BINDINGS_TABLE), BINDINGS_PK, w.key.partition("\n")[0]
        return self._table(SECTION_TABLE[w.section]), RESOURCE_PK, w.key

    async def _steps(self, batch: list[Write], expected: dict[tuple[str, str], str | None]
                     ) -> tuple[list[Step], list[Step]]:
        """One step per entity: a resource, or one resource's whole set of bindings (several binding
        writes on one resource become one step). Preconditions are checked here, before any write."""
        from azure.core.exceptions import ResourceNotFoundError

        steps: dict[tuple[str, str, str], Step] = {}
        step_of: list[Step] = []
        for w in batch:
            table, pk, rk = self._address(w)
            address = (table.table_name, pk, rk)
            step = steps.get(address)
            if step is None:
                try:
                    entity = await table.get_entity(pk, rk)
                except ResourceNotFoundError:
                    entity = None
                etag = None if entity is None else str(entity.metadata["etag"])
                raw = None if entity is None else plain(entity)
                step = steps[address] = Step(w.section, table, pk, rk, raw, etag)
                step.after = raw
            condition = expected.get((w.section, w.key), _ANY)
            if condition is not _ANY:
                exists = step.before_of(w) is not None
                if condition == "*" and not exists:
                    raise PreconditionFailed(f"{label_of(w)} does not exist (If-Match: *)")
                if condition is None and exists:
                    raise PreconditionFailed(f"{label_of(w)} already exists (If-None-Match: *)")
                if condition not in ("*", None) and (not exists or condition != step.etag_before):
                    raise PreconditionFailed(f"{label_of(w)} has changed since it was read: "
                                             "read it again and retry with its new ETag")
            apply_write(step, w)
            step_of.append(step)
        for step in steps.values():
            finish_step(step)
        return list(steps.values()), step_of

    async def _execute(self, step: Step) -> str | None:
        """One entity write, conditional on the entity being as it was read (a racing writer loses)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        try:
            if step.after is None:
                if step.etag_before is None:
                    return None
                await step.table.delete_entity(partition_key=step.pk, row_key=step.rk, etag=step.etag_before,
                                               match_condition=MatchConditions.IfNotModified)
                return None
            if step.etag_before is None:
                meta = await step.table.create_entity(step.after)
            else:
                meta = await step.table.update_entity(step.after, mode=UpdateMode.REPLACE,
                                                      etag=step.etag_before,
                                                      match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError):
            raise PreconditionFailed(f"{step.describe()} was changed by another writer meanwhile; "
                                     "nothing was changed: read it again and retry") from None
        return str(meta.get("etag")) if meta else None

    async def _undo(self, done: list[Step]) -> None:
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import UpdateMode

        for step in reversed(done):
            try:
                if step.before is None:
                    try:
                        await step.table.delete_entity(partition_key=step.pk, row_key=step.rk)
                    except ResourceNotFoundError:
                        pass
                else:
                    await step.table.upsert_entity(step.before, mode=UpdateMode.REPLACE)
            except Exception as exc:  # storage gone: say exactly what is left over
                log.error("could not undo the write of %s (%s): it is left as written",
                          step.describe(), type(exc).__name__)

    async def get(self, section: str, key: str) -> tuple[dict[str, Any], str] | None:
        """One stored resource (or binding) and its ETag, read fresh from storage. A binding's ETag
        is that of its resource's set of bindings: it changes when any binding of the resource does."""
        from azure.core.exceptions import ResourceNotFoundError

        await self.ensure_tables()
        table, pk, rk = self._address(Write(section, key, None))
        try:
            entity = await table.get_entity(pk, rk)
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            raise _unavailable("read the configuration", exc) from exc
        if section == "collaborators":
            resource, _, principal = key.partition("\n")
            role = unpack(entity).get(principal)
            if role is None:
                return None
            return {"resource": resource, "principal": principal, "role": role}, str(entity.metadata["etag"])
        return dict(json.loads(entity["spec"])), str(entity.metadata["etag"])

    async def list_section(self, section: str) -> list[tuple[dict[str, Any], str]]:
        """Every stored resource of a section with its ETag, by name."""
        await self.ensure_tables()
        out = []
        try:
            async for entity in self._table(SECTION_TABLE[section]).list_entities():
                out.append((dict(json.loads(entity["spec"])), str(entity.metadata["etag"])))
        except Exception as exc:
            raise _unavailable("read the configuration", exc) from exc
        return sorted(out, key=lambda d: d[0].get("name", ""))

    async def bindings(self, *, resource: str | None = None,
                       principal: str | None = None) -> list[tuple[dict[str, Any], str]]:
        """Collaborator bindings, optionally of one resource and/or one principal, with their ETags."""
        await self.ensure_tables()
        table = self._table(BINDINGS_TABLE)
        out = []
        try:
            if resource is not None:
                entities = [e async for e in table.query_entities(
                    "PartitionKey eq @pk and RowKey eq @rk", parameters={"pk": BINDINGS_PK, "rk": resource})]
            else:
                entities = [e async for e in table.list_entities()]
            for e in entities:
                etag = str(e.metadata["etag"])
                for who, role in unpack(e).items():
                    if principal is None or who == principal:
                        out.append(({"resource": e["RowKey"], "principal": who, "role": role}, etag))
        except Exception as exc:
            raise _unavailable("read the collaborators", exc) from exc
        return sorted(out, key=lambda d: (d[0]["resource"], d[0]["principal"]))

    async def bump_version(self) -> str:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        table = self._table("meta")
        for _ in range(20):
            try:
                current = await table.get_entity("config", "version")
            except ResourceNotFoundError:
                try:
                    await table.create_entity({"PartitionKey": "config", "RowKey": "version",
                                               "version": "1"})
                    return "1"
                except ResourceExistsError:
                    continue
            new = str(int(current.get("version", "0")) + 1)
            try:
                await table.update_entity({"PartitionKey": "config", "RowKey": "version", "version": new},
                                          mode=UpdateMode.REPLACE, etag=current.metadata["etag"],
                                          match_condition=MatchConditions.IfNotModified)
                return new
            except ResourceModifiedError:
                continue
        raise Unavailable("could not move the configuration version on: too many concurrent writers")

    async def aclose(self) -> None:
        await self._service.close()


def _unavailable(action: str, exc: BaseException) -> Unavailable:
    detail = type(exc).__name__
    message = str(exc).splitlines()[0] if str(exc) else ""
    return Unavailable(f"could not {action} in table storage ({detail}: {message[:200]})",
                       public=STORAGE_UNAVAILABLE)
