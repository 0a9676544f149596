"""The upstream tests' test CA, signing keys and fakes (Entra, the Kubernetes API), shared here."""

from __future__ import annotations

from tests.upstream.conftest import (  # noqa: F401  (fixtures, found by name)
    _no_host_identity,
    entra,
    entra_http,
    kube,
    signers,
    tls,
)
