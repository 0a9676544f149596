"""The remote-call collaborators this process builds once: client, sealer, signer, authenticator, audit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .assertions import AssertionSigner
from .audit import RemoteAudit
from .audit_store import AuditStore
from .auth import RemoteAuthenticator
from .client import RemoteClient
from .seal import Sealer

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

    from ..settings import Settings


@dataclass(slots=True)
class RemoteServices:
    client: RemoteClient
    sealer: Sealer
    assertions: AssertionSigner
    auth: RemoteAuthenticator
    audit: RemoteAudit
    public_url: str
    calls: AuditStore | None = None      # where the audit records are kept (the remotecalls table)

    @classmethod
    def build(cls, settings: Settings, service: TableServiceClient | None = None) -> RemoteServices:
        """`service`: the gateway's one table client; with it, every audit record is also stored."""
        sealer = Sealer(settings.sealing_key)
        assertions = AssertionSigner(sealer, settings.public_url)
        audit = RemoteAudit()
        calls = AuditStore(service, settings.table_prefix) if service is not None else None
        if calls is not None:
            audit.add_sink(calls)
        return cls(client=RemoteClient(allow_http_loopback=settings.allow_http_loopback), sealer=sealer,
                   assertions=assertions,
                   auth=RemoteAuthenticator(secret_prefix=settings.secret_env_prefix, assertions=assertions),
                   audit=audit, public_url=settings.public_url, calls=calls)

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.audit.aclose()
        if self.calls is not None:
            await self.calls.aclose()
