"""The remote-call collaborators this process builds once: client, sealer, signer, authenticator, audit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .assertions import AssertionSigner
from .audit import RemoteAudit
from .audit_store import AuditStore
from .auth import Mode, RemoteAuthenticator
from .client import RemoteClient
from .entra import EntraMode, RemoteScopes
from .oauth import OAuthMode
from .oauth_discovery import Discovery
from .oauth_store import OAuthTokenStore
from .seal import Sealer

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

    from ..config.allowlist import Allowlist
    from ..settings import Settings
    from ..upstream.credentials import Credentials


@dataclass(slots=True)
class RemoteServices:
    client: RemoteClient
    sealer: Sealer
    assertions: AssertionSigner
    auth: RemoteAuthenticator
    audit: RemoteAudit
    public_url: str
    entra: Credentials | None = None      # the synthetic accounts of servers with auth type entra
    oauth: OAuthMode | None = None        # per-user tokens: needs the table service
    calls: AuditStore | None = None       # where the audit records are kept (the remotecalls table)

    @classmethod
    def build(cls, settings: Settings, allowlist: Allowlist | None = None,
              service: TableServiceClient | None = None) -> RemoteServices:
        """`service`: the gateway's one table client (per-user OAuth tokens and the audit records are
        kept there)."""
        from ..config.allowlist import Allowlist
        from ..upstream.credentials import Credentials

        allowlist = allowlist or Allowlist.from_settings(settings)
        client = RemoteClient(allow_http_loopback=settings.allow_http_loopback)
        sealer = Sealer(settings.sealing_key)
        assertions = AssertionSigner(sealer, settings.public_url)
        entra = Credentials(allowlist=RemoteScopes.of(allowlist))
        modes: dict[str, Mode] = {"entra": EntraMode(entra, client_id=settings.azure_client_id)}
        audit = RemoteAudit()
        oauth = calls = None
        if service is not None:
            oauth = OAuthMode(sealer=sealer, store=OAuthTokenStore(service, settings.table_prefix),
                              discovery=Discovery(client, allowlist), client=client,
                              public_url=settings.public_url, secret_prefix=settings.secret_env_prefix)
            modes["oauth"] = oauth
            calls = AuditStore(service, settings.table_prefix)
            audit.add_sink(calls)
        return cls(client=client, sealer=sealer, assertions=assertions,
                   auth=RemoteAuthenticator(secret_prefix=settings.secret_env_prefix, assertions=assertions,
                                            modes=modes),
                   audit=audit, public_url=settings.public_url, entra=entra, oauth=oauth, calls=calls)

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.audit.aclose()
        if self.entra is not None:
            await self.entra.aclose()
        if self.calls is not None:
            await self.calls.aclose()
