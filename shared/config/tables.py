"""Opens the Table Storage service the settings name: a connection string, or an endpoint reached
with Entra (the managed identity in the app; an operator's az login session from the CLI)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..settings import Settings

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient


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
