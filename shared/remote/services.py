"""The remote-call collaborators this process builds once: client, sealer, signer, authenticator, audit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .assertions import AssertionSigner
from .audit import RemoteAudit
from .auth import RemoteAuthenticator
from .client import RemoteClient
from .entra import EntraMode, RemoteScopes
from .seal import Sealer

if TYPE_CHECKING:
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

    @classmethod
    def build(cls, settings: Settings, allowlist: Allowlist | None = None) -> RemoteServices:
        from ..config.allowlist import Allowlist
        from ..upstream.credentials import Credentials

        sealer = Sealer(settings.sealing_key)
        assertions = AssertionSigner(sealer, settings.public_url)
        entra = Credentials(allowlist=RemoteScopes.of(allowlist or Allowlist.from_settings(settings)))
        modes = {"entra": EntraMode(entra, client_id=settings.azure_client_id)}
        return cls(client=RemoteClient(allow_http_loopback=settings.allow_http_loopback), sealer=sealer,
                   assertions=assertions,
                   auth=RemoteAuthenticator(secret_prefix=settings.secret_env_prefix, assertions=assertions,
                                            modes=modes),
                   audit=RemoteAudit(), public_url=settings.public_url, entra=entra)

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.audit.aclose()
        if self.entra is not None:
            await self.entra.aclose()
