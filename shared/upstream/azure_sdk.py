"""Builds azure-identity's async credentials the way this gateway needs them, importing it lazily.

Two choices matter. Transport settings (`AzureHttp`) are passed to every credential so a private CA
(`connection_verify`) and bounded retries apply everywhere. And the credentials that hold a token cache
get one that never stores (`NoTokenCache`): `TokenKeeper` owns caching and refresh, so when it asks for
a token it must get a new one, not the copy azure-identity would otherwise return (and whose failed
refreshes azure-identity would silently swallow).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from msal import TokenCache

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
_loaded = False


async def load() -> None:
    """Import azure.identity.aio (~400 ms) in a thread the first time, not on the event loop."""
    global _loaded
    if not _loaded:
        await asyncio.to_thread(importlib.import_module, "azure.identity.aio")
        _loaded = True


@dataclass(frozen=True, slots=True)
class AzureHttp:
    """Transport settings for the credentials that talk to Entra."""

    connection_verify: bool | str = True   # True: system CA store (SSL_CERT_FILE honoured); or a CA file
    retry_total: int = 3
    retry_backoff_factor: float = 0.5
    connection_timeout: float = 10
    read_timeout: float = 30

    def kwargs(self) -> dict[str, Any]:
        return {"connection_verify": self.connection_verify, "retry_total": self.retry_total,
                "retry_backoff_factor": self.retry_backoff_factor,
                "connection_timeout": self.connection_timeout, "read_timeout": self.read_timeout}


def no_token_cache() -> TokenCache:
    from msal import TokenCache

    class NoTokenCache(TokenCache):
        """Remembers nothing, so every get_token_info is a request to the issuer."""

        def add(self, event: dict[str, Any], **kwargs: Any) -> None:
            return None

    return NoTokenCache()


def client_secret(tenant_id: str, client_id: str, secret: str, *, authority: str,
                  http: AzureHttp) -> AsyncTokenCredential:
    from azure.identity.aio import ClientSecretCredential

    return ClientSecretCredential(tenant_id, client_id, secret, authority=authority, cache=no_token_cache(),
                                  **http.kwargs())


def certificate(tenant_id: str, client_id: str, path: str, *, authority: str,
                http: AzureHttp) -> AsyncTokenCredential:
    from azure.identity.aio import CertificateCredential

    return CertificateCredential(tenant_id, client_id, certificate_path=path, authority=authority,
                                 cache=no_token_cache(), **http.kwargs())


def client_assertion(tenant_id: str, client_id: str, assertion: Callable[[], str], *, authority: str,
                     http: AzureHttp) -> AsyncTokenCredential:
    from azure.identity.aio import ClientAssertionCredential

    return ClientAssertionCredential(tenant_id, client_id, assertion, authority=authority,
                                     cache=no_token_cache(), **http.kwargs())


def managed_identity(client_id: str | None, *, cached: bool) -> AsyncTokenCredential:
    """The host's managed identity (App Service / Functions, IMDS, Arc...), as azure-identity finds it
    from the environment (IDENTITY_ENDPOINT and IDENTITY_HEADER in App Service and Functions).
    Its own retry and timeout settings are kept: IMDS needs them. `cached=False` turns its cache off."""
    from azure.identity.aio import ManagedIdentityCredential

    kwargs: dict[str, Any] = {} if cached else {"_cache": no_token_cache()}
    return ManagedIdentityCredential(client_id=client_id, **kwargs)
