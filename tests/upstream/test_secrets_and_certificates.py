"""api-key, client-secret, certificate and managed-identity accounts against the fake Entra and emulator."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.entra import FakeEntra, make_certificate
from sandbox.managed_identity import ManagedIdentityEndpoint
from shared.errors import Unavailable
from shared.upstream.credentials import Credentials
from tests.upstream.helpers import CLIENT, MI_CLIENT, TENANT, account, chat

SECRET = "s3cr3t-value"


def secret_account(entra: FakeEntra, endpoint: str = "https://acme.openai.azure.com", **extra: str):
    return account({"type": "client-secret", "tenant_id": TENANT, "client_id": CLIENT,
                    "secret_env": "GATEWAY_SECRET_AOAI", "authority_host": entra.url, **extra},
                   endpoint=endpoint)


async def test_api_key_comes_from_the_named_variable(monkeypatch: pytest.MonkeyPatch,
                                                     make_credentials: Callable[..., Credentials]) -> None:
    monkeypatch.setenv("GATEWAY_SECRET_AOAI_KEY", "k-123")
    credentials = make_credentials()
    acct = account({"type": "api-key", "key_env": "GATEWAY_SECRET_AOAI_KEY"})
    assert await credentials.for_account(acct).auth_headers() == {"api-key": "k-123"}
    assert credentials.status()["aoai"]["auth"] == "api-key"
    assert credentials.status()["aoai"]["expires_on"] is None


async def test_api_key_missing_names_key_env(make_credentials: Callable[..., Credentials]) -> None:
    credentials = make_credentials()
    acct = account({"type": "api-key", "key_env": "GATEWAY_SECRET_NOT_SET_ANYWHERE"})
    with pytest.raises(Unavailable) as caught:
        await credentials.for_account(acct).auth_headers()
    assert caught.value.status == 503
    message = caught.value.message
    assert "account aoai" in message and "GATEWAY_SECRET_NOT_SET_ANYWHERE" in message
    assert credentials.status()["aoai"]["field"] == "key_env"


async def test_client_secret_token_is_accepted_by_the_emulator(
        monkeypatch: pytest.MonkeyPatch, entra: FakeEntra, aoai: AzureOpenAIEmulator,
        make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, secrets=[SECRET])
    monkeypatch.setenv("GATEWAY_SECRET_AOAI", SECRET)
    credentials = make_credentials()
    headers = await credentials.for_account(secret_account(entra, aoai.url)).auth_headers()
    assert headers["Authorization"].startswith("Bearer ")
    status, body = await chat(aoai.url, headers)
    assert status == 200, body
    assert entra.requests[-1]["scope"] == "https://cognitiveservices.azure.com/.default"
    # without a token, or with the wrong one, the emulator refuses
    assert (await chat(aoai.url, {"Authorization": "Bearer nope"}))[0] == 401


async def test_token_for_another_scope_is_refused_by_the_emulator(
        monkeypatch: pytest.MonkeyPatch, entra: FakeEntra, aoai: AzureOpenAIEmulator,
        make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, secrets=[SECRET])
    monkeypatch.setenv("GATEWAY_SECRET_AOAI", SECRET)
    acct = secret_account(entra, aoai.url, scope="https://ai.azure.com/.default")
    headers = await make_credentials().for_account(acct).auth_headers()
    assert (await chat(aoai.url, headers))[0] == 401


async def test_wrong_secret_names_secret_env(monkeypatch: pytest.MonkeyPatch, entra: FakeEntra,
                                             make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, secrets=[SECRET])
    monkeypatch.setenv("GATEWAY_SECRET_AOAI", "the-secret-id-not-its-value")
    credentials = make_credentials()
    with pytest.raises(Unavailable) as caught:
        await credentials.for_account(secret_account(entra)).auth_headers()
    message = caught.value.message
    assert message.startswith("account aoai: Entra refused the client secret (AADSTS7000215)")
    assert "GATEWAY_SECRET_AOAI" in message and "the-secret-id-not-its-value" not in message
    assert credentials.status()["aoai"]["field"] == "secret_env"
    assert credentials.status()["aoai"]["trace_id"]


async def test_expired_secret(monkeypatch: pytest.MonkeyPatch, entra: FakeEntra,
                              make_credentials: Callable[..., Credentials]) -> None:
    entra.add_app(TENANT, CLIENT, expired_secrets=[SECRET])
    monkeypatch.setenv("GATEWAY_SECRET_AOAI", SECRET)
    with pytest.raises(Unavailable, match=r"AADSTS7000222.*GATEWAY_SECRET_AOAI has expired"):
        await make_credentials().for_account(secret_account(entra)).auth_headers()


async def test_unset_secret_variable_names_it(entra: FakeEntra,
                                              make_credentials: Callable[..., Credentials]) -> None:
    credentials = make_credentials()
    with pytest.raises(Unavailable, match=r"GATEWAY_SECRET_AOAI .* is not set.*auth.secret_env"):
        await credentials.for_account(secret_account(entra)).auth_headers()
    assert entra.requests == []
    assert credentials.status()["aoai"]["field"] == "secret_env"


async def test_plain_http_authority_is_refused(monkeypatch: pytest.MonkeyPatch,
                                               make_credentials: Callable[..., Credentials]) -> None:
    monkeypatch.setenv("GATEWAY_SECRET_AOAI", SECRET)
    acct = account({"type": "client-secret", "tenant_id": TENANT, "client_id": CLIENT,
                    "secret_env": "GATEWAY_SECRET_AOAI", "authority_host": "http://127.0.0.1:9"})
    with pytest.raises(Unavailable, match=r"authority_host.* must be an https URL"):
        await make_credentials().for_account(acct).auth_headers()


async def test_certificate(tmp_path, entra: FakeEntra, aoai: AzureOpenAIEmulator,
                           make_credentials: Callable[..., Credentials]) -> None:
    pem, cert = make_certificate()
    path = tmp_path / "app.pem"
    path.write_bytes(pem)
    entra.add_app(TENANT, CLIENT, certificates=[cert])
    acct = account({"type": "certificate", "tenant_id": TENANT, "client_id": CLIENT,
                    "certificate_path": str(path), "authority_host": entra.url}, endpoint=aoai.url)
    headers = await make_credentials().for_account(acct).auth_headers()
    assert (await chat(aoai.url, headers))[0] == 200


async def test_unregistered_certificate_names_certificate_path(
        tmp_path, entra: FakeEntra, make_credentials: Callable[..., Credentials]) -> None:
    pem, _ = make_certificate()
    _, registered = make_certificate("another")
    path = tmp_path / "app.pem"
    path.write_bytes(pem)
    entra.add_app(TENANT, CLIENT, certificates=[registered])
    acct = account({"type": "certificate", "tenant_id": TENANT, "client_id": CLIENT,
                    "certificate_path": str(path), "authority_host": entra.url})
    credentials = make_credentials()
    with pytest.raises(Unavailable, match=r"AADSTS700027.*not registered on app 1111"):
        await credentials.for_account(acct).auth_headers()
    assert credentials.status()["aoai"]["field"] == "certificate_path"


async def test_missing_certificate_file(tmp_path, entra: FakeEntra,
                                        make_credentials: Callable[..., Credentials]) -> None:
    acct = account({"type": "certificate", "tenant_id": TENANT, "client_id": CLIENT,
                    "certificate_path": str(tmp_path / "nope.pem"), "authority_host": entra.url})
    with pytest.raises(Unavailable, match=r"nope.pem does not exist: check auth.certificate_path"):
        await make_credentials().for_account(acct).auth_headers()


async def test_managed_identity_account(entra: FakeEntra, identity_endpoint: ManagedIdentityEndpoint,
                                        aoai: AzureOpenAIEmulator,
                                        make_credentials: Callable[..., Credentials]) -> None:
    identity_endpoint.attach(entra.add_identity(TENANT, MI_CLIENT))
    acct = account({"type": "managed-identity", "client_id": MI_CLIENT}, endpoint=aoai.url)
    credentials = make_credentials()
    headers = await credentials.for_account(acct).auth_headers()
    assert (await chat(aoai.url, headers))[0] == 200
    assert identity_endpoint.requests[-1] == {"client_id": MI_CLIENT,
                                              "resource": "https://cognitiveservices.azure.com"}
    assert credentials.status()["aoai"]["expires_on"] is not None
    # azure-identity's own cache is off: the canary's refresh really asks the endpoint again
    assert (await credentials.refresh_all([acct]))["aoai"] is None
    assert len(identity_endpoint.requests) == 2


async def test_managed_identity_not_attached_names_client_id(
        entra: FakeEntra, identity_endpoint: ManagedIdentityEndpoint,
        make_credentials: Callable[..., Credentials]) -> None:
    acct = account({"type": "managed-identity", "client_id": MI_CLIENT})
    credentials = make_credentials()
    with pytest.raises(Unavailable) as caught:
        await credentials.for_account(acct).auth_headers()
    assert "refused user-assigned identity 2222" in caught.value.message
    assert "Unable to load the proper Managed Identity" in caught.value.message
    assert credentials.status()["aoai"]["field"] == "client_id"


async def test_a_renewed_certificate_file_is_picked_up(tmp_path, entra: FakeEntra,
                                                        make_credentials: Callable[..., Credentials]) -> None:
    old_pem, _ = make_certificate("old")
    new_pem, new_cert = make_certificate("new")
    path = tmp_path / "app.pem"
    path.write_bytes(old_pem)
    entra.add_app(TENANT, CLIENT, certificates=[new_cert])
    acct = account({"type": "certificate", "tenant_id": TENANT, "client_id": CLIENT,
                    "certificate_path": str(path), "authority_host": entra.url})
    credentials = make_credentials()
    assert (await credentials.refresh_all([acct]))["aoai"] is not None
    path.write_bytes(new_pem)                             # the operator renews the file
    assert (await credentials.refresh_all([acct]))["aoai"] is None
