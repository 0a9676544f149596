"""The remote-call collaborators this process builds once: client, sealer, signer, authenticator, audit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .assertions import AssertionSigner
from .audit import RemoteAudit
from .auth import RemoteAuthenticator
from .client import RemoteClient
from .seal import Sealer

if TYPE_CHECKING:
    from ..settings import Settings


@dataclass(slots=True)
class RemoteServices:
    client: RemoteClient
    sealer: Sealer
    assertions: AssertionSigner
    auth: RemoteAuthenticator
    audit: RemoteAudit
    public_url: str

    @classmethod
    def build(cls, settings: Settings) -> RemoteServices:
        sealer = Sealer(settings.sealing_key)
        assertions = AssertionSigner(sealer, settings.public_url)
        return cls(client=RemoteClient(allow_http_loopback=settings.allow_http_loopback), sealer=sealer,
                   assertions=assertions,
                   auth=RemoteAuthenticator(secret_prefix=settings.secret_env_prefix, assertions=assertions),
                   audit=RemoteAudit(), public_url=settings.public_url)

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.audit.aclose()
