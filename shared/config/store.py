"""Keeps the configuration in Azure Table Storage: one table per resource kind under the prefix.

Each resource is one entity (PartitionKey "r", RowKey = its name, `spec` = its JSON document);
a collaborator binding is keyed by resource and a hash of the principal, which may hold any
character. A version entity in `<prefix>meta` changes after every write, so each process can poll
one entity to learn that it must reload.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Unavailable
from ..settings import Settings
from .model import KINDS, Collaborator, Config
from .schema import ConfigError, item_document, parse_item
from .tables import service_from_settings

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient, TableServiceClient

log = logging.getLogger("gateway.config")

SECTION_TABLE = {section: suffix for section, suffix, _ in KINDS}
EXTRA_TABLES = ("collaborators", "meta")
RESOURCE_PK = "r"


@dataclass(frozen=True, slots=True)
class Write:
    """One entity-level change: `document` None means delete."""

    section: str                 # a KINDS section, or "collaborators"
    key: str                     # resource name, or "<resource>\n<principal>" for collaborators
    document: dict[str, Any] | None


def collaborator_key(resource: str, principal: str) -> str:
    return f"{resource}\n{principal}"


def _principal_row(principal: str) -> str:
    return hashlib.sha256(principal.encode("utf-8")).hexdigest()


class ConfigStore:
    def __init__(self, service: TableServiceClient, prefix: str) -> None:
        self._service = service
        self.prefix = prefix
        self._ready = False

    @classmethod
    def from_settings(cls, settings: Settings, *, operator: bool = False) -> ConfigStore:
        return cls(service_from_settings(settings, operator=operator), settings.table_prefix)

    def table_name(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

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
                items.append(parse_item(section, json.loads(entity["spec"]), where))
            except (ConfigError, ValueError, KeyError) as exc:
                log.error("skipping an invalid stored resource: %s: %s", where, exc)
        return tuple(sorted(items, key=lambda i: i.name))

    async def _read_collaborators(self) -> tuple[Collaborator, ...]:
        out = []
        async for e in self._table("collaborators").list_entities():
            out.append(Collaborator(resource=e["PartitionKey"], principal=e["principal"], role=e["role"]))
        return tuple(sorted(out, key=lambda c: (c.resource, c.principal)))

    async def write(self, writes: Iterable[Write]) -> None:
        """Apply entity writes in the order given, then move the version on."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import UpdateMode

        await self.ensure_tables()
        try:
            for w in writes:
                if w.section == "collaborators":
                    resource, _, principal = w.key.partition("\n")
                    table = self._table("collaborators")
                    pk, rk = resource, _principal_row(principal)
                    entity = None if w.document is None else {
                        "PartitionKey": pk, "RowKey": rk, "principal": principal,
                        "role": w.document["role"]}
                else:
                    table = self._table(SECTION_TABLE[w.section])
                    pk, rk = RESOURCE_PK, w.key
                    entity = None if w.document is None else {
                        "PartitionKey": pk, "RowKey": rk,
                        "spec": json.dumps(w.document, sort_keys=True, separators=(",", ":"))}
                if entity is None:
                    try:
                        await table.delete_entity(partition_key=pk, row_key=rk)
                    except ResourceNotFoundError:
                        pass
                else:
                    await table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except Exception as exc:
            raise _unavailable("write the configuration", exc) from exc
        finally:
            await self.bump_version()

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


def document_writes(section: str, items: Iterable[Any]) -> list[Write]:
    """Writes that create or replace `items` of one section."""
    if section == "collaborators":
        return [Write(section, collaborator_key(c.resource, c.principal), item_document(c)) for c in items]
    return [Write(section, i.name, item_document(i)) for i in items]


def _unavailable(action: str, exc: BaseException) -> Unavailable:
    detail = type(exc).__name__
    message = str(exc).splitlines()[0] if str(exc) else ""
    return Unavailable(f"could not {action} in table storage ({detail}: {message[:200]})")
