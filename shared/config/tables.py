"""Opens the Table Storage service the settings name (a connection string, or an endpoint reached with
Entra: the managed identity in the app, an operator's az login session from the CLI), and `Table`:
every table call of the configuration, the health records and usage goes through it, so this is the
one place where azure-data-tables' exceptions become the error family.

    storage says                                  callers see
    entity exists / changed / gone, on a          Raced (a PreconditionFailed, 412): another writer
      conditional write                             got there first; the store retries its change set
    entity or property too large                  InvalidRequest (400), nothing written
    entity absent on a read; table absent on a    None / no rows (not an error)
      query
    anything else (network, auth, throttling)     Unavailable (503), naming the table and the action
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import STORAGE_UNAVAILABLE, GatewayError, InvalidRequest, PreconditionFailed, Unavailable
from ..settings import Settings

if TYPE_CHECKING:
    from azure.data.tables import TableEntity
    from azure.data.tables.aio import TableClient, TableServiceClient

PAGE = 1000                     # the most entities the service returns in one response
TOO_LARGE = ("exceeds the maximum allowed size", "EntityTooLarge", "PropertyValueTooLarge",
             "RequestBodyTooLarge")


class Raced(PreconditionFailed):
    """A conditional write found the entity changed (or created, or deleted) since it was read."""


def service_from_settings(settings: Settings, *, operator: bool = False) -> TableServiceClient:
    from azure.data.tables.aio import TableServiceClient

    settings.require_tables()
    if settings.tables_connection:
        return TableServiceClient.from_connection_string(settings.tables_connection)
    from azure.identity import aio

    client_id = settings.azure_client_id or None
    credential = (aio.DefaultAzureCredential(managed_identity_client_id=client_id) if operator
                  else aio.ManagedIdentityCredential(client_id=client_id))
    return TableServiceClient(endpoint=settings.tables_endpoint, credential=credential)


@contextmanager
def storage_errors(action: str, table: str) -> Iterator[None]:
    """Translate what the storage SDK raises inside the block (`action`: "read", "write", ...)."""
    from azure.core.exceptions import (
        AzureError,
        ResourceExistsError,
        ResourceModifiedError,
        ResourceNotFoundError,
    )

    try:
        yield
    except GatewayError:
        raise
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        raise Raced(f"an entity of table {table} was changed by another writer meanwhile; "
                    "read it again and retry") from None
    except (AzureError, OSError, TimeoutError) as exc:
        text = str(exc)
        if any(marker in text for marker in TOO_LARGE):
            raise InvalidRequest("a resource is too large for table storage (at most 32 KiB of JSON); "
                                 "nothing was changed") from None
        first = text.splitlines()[0][:200] if text else ""
        raise Unavailable(f"could not {action} table {table} ({type(exc).__name__}: {first})",
                          public=STORAGE_UNAVAILABLE) from exc


def etag_of(entity: Any) -> str:
    return str(entity.metadata["etag"])


class Table:
    """One table's calls, translated (see the module docstring); write calls return the new ETag."""

    def __init__(self, client: TableClient) -> None:
        self._client = client
        self.name: str = client.table_name

    async def ensure(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with storage_errors("create", self.name):
            try:
                await self._client.create_table()
            except ResourceExistsError:
                pass

    async def get(self, pk: str, rk: str) -> TableEntity | None:
        from azure.core.exceptions import ResourceNotFoundError

        with storage_errors("read", self.name):
            try:
                return await self._client.get_entity(pk, rk)
            except ResourceNotFoundError:
                return None

    async def query(self, query_filter: str | None = None, parameters: dict[str, Any] | None = None, *,
                    limit: int | None = None) -> list[TableEntity]:
        """Entities in key order; at most `limit` of them (one or two service calls) when given."""
        from azure.core.exceptions import ResourceNotFoundError

        per_page = min(limit, PAGE) if limit else None
        out: list[TableEntity] = []
        with storage_errors("read", self.name):
            try:
                found = (self._client.query_entities(query_filter, parameters=parameters,
                                                     results_per_page=per_page)
                         if query_filter else self._client.list_entities(results_per_page=per_page))
                async for entity in found:
                    out.append(entity)
                    if limit is not None and len(out) >= limit:
                        break
            except ResourceNotFoundError:   # the table does not exist (yet): it holds nothing
                return []
        return out

    async def create(self, entity: dict[str, Any]) -> str:
        with storage_errors("write", self.name):
            return str((await self._client.create_entity(entity)).get("etag"))

    async def replace(self, entity: dict[str, Any], etag: str | None = None) -> str:
        """Replace the entity; with `etag`, only while it is still that version (else Raced)."""
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        with storage_errors("write", self.name):
            if etag is None:
                meta = await self._client.upsert_entity(entity, mode=UpdateMode.REPLACE)
            else:
                meta = await self._client.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag,
                                                        match_condition=MatchConditions.IfNotModified)
            return str(meta.get("etag"))

    async def delete(self, pk: str, rk: str, etag: str | None = None) -> None:
        """Delete the entity; with `etag`, only while it is still that version (else Raced).
        Deleting an absent entity unconditionally is not an error."""
        from azure.core import MatchConditions

        with storage_errors("write", self.name):
            if etag is None:
                await self._client.delete_entity(partition_key=pk, row_key=rk)
            else:
                await self._client.delete_entity(partition_key=pk, row_key=rk, etag=etag,
                                                 match_condition=MatchConditions.IfNotModified)

    async def transaction(self, operations: Iterable[tuple[Any, ...]]) -> None:
        """One entity-group transaction (at most 100 operations, one partition)."""
        with storage_errors("write", self.name):
            await self._client.submit_transaction(list(operations))
