"""The upstream-credential fixtures (a test CA, the fake Entra, the App Service managed-identity
endpoint, credential registries) for the remote-call tests, which get Entra tokens the same way."""

from __future__ import annotations

from tests.upstream.conftest import (  # noqa: F401  (pytest finds fixtures by name)
    _no_host_identity,
    entra,
    entra_http,
    identity_endpoint,
    signers,
    tls,
)
