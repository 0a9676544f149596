"""`auth.assertion.api_server` is admin input and the pod's service-account token is sent there: it
must be https, and never reach a metadata, link-local or otherwise forbidden address (in any IPv6
spelling). The cluster's own addresses (private, or loopback for a local cluster) stay allowed; the
fake API server on loopback is served as before (tests/upstream/test_workload_identity.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from sandbox.entra import FakeEntra
from sandbox.kubernetes import FakeKubernetes
from shared.upstream.credentials import Credentials
from tests.upstream.conftest import allowlist_for
from tests.upstream.helpers import TLSFiles
from tests.upstream.test_workload_identity import failure, k8s_assertion, wi_account


@pytest.mark.parametrize(("api_server", "words"), [
    ("https://169.254.169.254", "169.254.169.254 is a cloud metadata or platform address"),
    ("https://[::ffff:169.254.169.254]", "169.254.169.254 is a cloud metadata"),
    ("https://[64:ff9b::a9fe:a9fe]", "embeds 169.254.169.254"),
    ("https://[2002:a9fe:a9fe::1]", "embeds 169.254.169.254"),
    ("https://168.63.129.16", "cloud metadata or platform address"),
    ("https://[fe80::1]", "link-local"),
    ("https://[64:ff9b::127.0.0.1]", "embeds 127.0.0.1"),
    ("https://0.0.0.0", "unspecified"),
], ids=["imds", "mapped", "nat64", "6to4", "wireserver", "link-local", "nat64-loopback", "unspecified"])
async def test_attack_kubernetes_api_server_at_a_forbidden_address_gets_no_pod_token(
        entra: FakeEntra, kube: FakeKubernetes, tls: TLSFiles, kube_files: Callable[..., str],
        make_credentials: Callable[..., Credentials], request: pytest.FixtureRequest, api_server: str,
        words: str) -> None:
    """Even an origin the operator listed (a name that resolves there, say) is refused at connect time."""
    pod_token = kube_files(kube.pod_token("ai", "gateway"), "pod-token")
    acct = wi_account(entra, k8s_assertion(kube, tls, pod_token, api_server=api_server))
    base = allowlist_for(request)
    listed = dataclasses.replace(base, kubernetes_api_servers=base.kubernetes_api_servers | {api_server})
    message, status = await failure(make_credentials(allowlist=listed), acct)
    assert "refused by the address policy" in message and words in message, message
    assert status["field"] == "assertion.api_server"
    assert kube.requests == [] and entra.requests == []


async def test_attack_kubernetes_api_server_over_plain_http_is_refused(
        entra: FakeEntra, kube: FakeKubernetes, tls: TLSFiles, kube_files: Callable[..., str],
        make_credentials: Callable[..., Credentials]) -> None:
    pod_token = kube_files(kube.pod_token("ai", "gateway"), "pod-token")
    plain = kube.url.replace("https://", "http://")
    acct = wi_account(entra, k8s_assertion(kube, tls, pod_token, api_server=plain))
    message, status = await failure(make_credentials(), acct)
    assert "https" in message and status["field"] == "assertion.api_server"
    assert kube.requests == []
