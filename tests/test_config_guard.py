"""Whoever may edit an account cannot make the gateway read an arbitrary environment variable, nor ask
Entra for a token to Storage or Resource Manager, nor send a key or token to a host of their choosing:
refused at parse (apply, /manage), left unused when found stored, and refused again at use."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from sandbox.azurite import Azurite
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from shared.config.allowlist import Allowlist
from shared.config.entities import Write
from shared.config.schema import ConfigError, parse, parse_item
from shared.errors import Unavailable
from shared.settings import SettingsError, load, secret
from shared.upstream.credentials import Credentials
from tests.harness import (
    EMULATOR_KEY_ENV,
    ROOT,
    NewWorld,
    Tables,
    World,
    emulator_running,
    gateway_env,
    sandbox_config,
    unique_prefix,
)
from tests.manage.conftest import ROOT_ADMIN

TENANT = "00000000-0000-0000-0000-000000000000"
CLIENT = "11111111-1111-1111-1111-111111111111"
API_KEY = {"type": "api-key", "key_env": "GATEWAY_SECRET_AOAI_KEY"}
SECRET = {"type": "client-secret", "tenant_id": TENANT, "client_id": CLIENT,
          "secret_env": "GATEWAY_SECRET_AOAI_SECRET"}
MI = {"type": "managed-identity"}
WI = {"type": "workload-identity", "tenant_id": TENANT, "client_id": CLIENT,
      "assertion": {"source": "managed-identity", "client_id": CLIENT}}
KUBE = {"source": "kubernetes", "namespace": "ai", "service_account": "gateway"}


def acct(endpoint: str = "https://acme.openai.azure.com", kind: str = "azure-openai",
         **auth: Any) -> dict[str, Any]:
    return {"name": "aoai", "kind": kind, "endpoint": endpoint, "auth": auth or API_KEY}


def refusal(account: dict[str, Any], allowlist: Allowlist = Allowlist()) -> str:
    """The field a file with this account is refused at."""
    with pytest.raises(ConfigError) as caught:
        parse({"accounts": [account]}, allowlist=allowlist)
    assert caught.value.problem and "GATEWAY_TABLES_CONNECTION" not in caught.value.problem
    return caught.value.field


# --- parse: apply, diff and /manage refuse, naming the field ---------------------------------------

@pytest.mark.parametrize("name", ["GATEWAY_TABLES_CONNECTION", "APPLICATIONINSIGHTS_CONNECTION_STRING",
                                  "IDENTITY_HEADER", "AzureWebJobsStorage"])
def test_attack_key_env_reads_tables_connection_string(name: str) -> None:
    assert refusal(acct(type="api-key", key_env=name)) == "accounts[0].auth.key_env"


@pytest.mark.parametrize("name", ["MSI_SECRET", "AZURE_CLIENT_SECRET", "GATEWAY_SECRET_", "gateway_secret_x",
                                  "GATEWAY_SECRETX", "XGATEWAY_SECRET_X", "GATEWAY_SECRET_X-Y"])
def test_attack_secret_env_outside_prefix(name: str) -> None:
    assert refusal(acct(**{**SECRET, "secret_env": name})) == "accounts[0].auth.secret_env"


def test_the_prefix_is_the_operators_to_choose() -> None:
    mine = Allowlist.from_settings(load({"GATEWAY_SECRET_ENV_PREFIX": "ACME_AI_"}))
    field = refusal(acct(**{**SECRET, "secret_env": "GATEWAY_SECRET_X"}), mine)
    assert field == "accounts[0].auth.secret_env"
    parse({"accounts": [acct(**{**SECRET, "secret_env": "ACME_AI_X"})]}, allowlist=mine)


@pytest.mark.parametrize("auth", [MI, WI, SECRET])
@pytest.mark.parametrize("scope", ["https://storage.azure.com/.default", "https://storage.azure.com/",
                                   "https://acme.blob.core.windows.net/.default",
                                   "https://cognitiveservices.azure.com/.default ",
                                   "HTTPS://COGNITIVESERVICES.AZURE.COM/.default"])
def test_attack_scope_storage_token(auth: dict[str, Any], scope: str) -> None:
    assert refusal(acct(**{**auth, "scope": scope})) == "accounts[0].auth.scope"


@pytest.mark.parametrize("scope", ["https://management.azure.com/.default", "https://management.core.windows.net/",
                                   "https://graph.microsoft.com/.default", "https://vault.azure.net/.default"])
def test_attack_scope_management_token(scope: str) -> None:
    assert refusal(acct(**{**MI, "scope": scope})) == "accounts[0].auth.scope"


@pytest.mark.parametrize(("endpoint", "loopback"), [
    ("https://evil.example", False),
    ("https://openai.azure.com", False),                   # no resource label
    ("https://a.b.openai.azure.com", False),               # one label only
    ("https://acme.table.core.windows.net", False),
    ("https://management.azure.com", False),
    ("http://acme.openai.azure.com", True),                # plain http only on loopback
    ("http://10.0.0.5", True),
    ("http://127.0.0.1:7082", False),                      # and only with the dev flag
    ("ftp://acme.openai.azure.com", True),
])
def test_attack_endpoint_foreign_host(endpoint: str, loopback: bool) -> None:
    assert refusal(acct(endpoint), Allowlist(http_loopback=loopback)) == "accounts[0].endpoint"


@pytest.mark.parametrize("endpoint", [
    "https://x.openai.azure.com@evil.example",
    "https://x.openai.azure.com:pw@evil.example",
    "https://evil.example/x.openai.azure.com",
    "https://x.openai.azure.com.evil.example",
    "https://X.OPENAI.AZURE.COM.EVIL.EXAMPLE",
    "https://ACME.openai.azure.com",
    "HTTPS://acme.openai.azure.com",
    "https://acme.openai.azure.com:8443",
    "https://acme.openai.azure.com./",
    "https://evil.example\\@acme.openai.azure.com",
    "https://evil.example#@acme.openai.azure.com",
    "https://evil.example?@acme.openai.azure.com",
    "https://acme.openai.azure.com%2eevil.example",
    "https://acme.openai.azure.com\u3002evil.example",
    "https://acme.openai.azure.com/openai/deployments",
    "http://user@127.0.0.1:7082",
    "http://127.0.0.1:7082/x.openai.azure.com",
])
def test_attack_endpoint_userinfo_or_port_trick(endpoint: str) -> None:
    assert refusal(acct(endpoint), Allowlist(http_loopback=True)) == "accounts[0].endpoint"


@pytest.mark.parametrize("authority", [
    "https://evil.example", "https://login.microsoftonline.com.evil.example",
    "https://login.microsoftonline.com@evil.example", "http://login.microsoftonline.com",
    "https://login.microsoftonline.com:8443", "https://login.microsoftonline.com/evil",
    "https://127.0.0.1:8443",
])
def test_attack_authority_host_foreign(authority: str) -> None:
    assert refusal(acct(**{**SECRET, "authority_host": authority}),
                   Allowlist(http_loopback=True)) == "accounts[0].auth.authority_host"


@pytest.mark.parametrize("account", [
    acct("https://acme.openai.azure.com/"),
    acct("https://acme.openai.azure.com:443"),
    acct("https://acme-2.cognitiveservices.azure.com", **MI),
    acct("https://acme.services.ai.azure.com/api/projects/p1", kind="ai-foundry",
         **{**MI, "scope": "https://ai.azure.com/.default"}),
    acct("https://acme.openai.azure.us", **{**SECRET, "authority_host": "https://login.microsoftonline.us",
                                            "scope": "https://cognitiveservices.azure.us/.default"}),
    acct("https://acme.openai.azure.cn", **{**WI, "authority_host": "https://login.chinacloudapi.cn/"}),
    acct("https://acme.services.ai.azure.cn", **{**SECRET,
                                                 "authority_host": "https://login.partner.microsoftonline.cn"}),
    acct("https://acme.openai.azure.com", **{**SECRET, "authority_host": "https://LOGIN.microsoftonline.com"}),
])
def test_what_azure_needs_is_allowed(account: dict[str, Any]) -> None:
    parse({"accounts": [account]})


def test_settings_add_hosts_scopes_and_authorities() -> None:
    account = acct("https://models.corp.example", **{**SECRET, "authority_host": "https://login.corp.example/",
                                                     "scope": "api://corp-models/.default"})
    assert refusal(account) == "accounts[0].endpoint"
    added = Allowlist.from_settings(load({"GATEWAY_UPSTREAM_HOSTS": "Models.Corp.Example",
                                          "GATEWAY_AUTHORITY_HOSTS": "https://login.corp.example",
                                          "GATEWAY_ENTRA_SCOPES": "api://corp-models/.default"}))
    parse({"accounts": [account]}, allowlist=added)


@pytest.mark.parametrize(("name", "value"), [
    ("GATEWAY_SECRET_ENV_PREFIX", ""),
    ("GATEWAY_SECRET_ENV_PREFIX", "gw_"),
    ("GATEWAY_SECRET_ENV_PREFIX", "GATEWAY_"),        # would admit GATEWAY_TABLES_CONNECTION
    ("GATEWAY_SECRET_ENV_PREFIX", "APPLICATION"),
    ("GATEWAY_UPSTREAM_HOSTS", "https://models.corp.example"),
    ("GATEWAY_UPSTREAM_HOSTS", "models.corp.example:8443"),
    ("GATEWAY_UPSTREAM_HOSTS", "*.corp.example"),
    ("GATEWAY_ENTRA_SCOPES", "not a scope"),
    ("GATEWAY_AUTHORITY_HOSTS", "http://login.corp.example"),
    ("GATEWAY_AUTHORITY_HOSTS", "https://login.corp.example/tenant"),
    ("GATEWAY_KUBERNETES_API_SERVERS", "http://127.0.0.1:6443"),
    ("GATEWAY_KUBERNETES_API_SERVERS", "https://k8s.corp.example/api"),
    ("GATEWAY_KUBERNETES_API_SERVERS", "k8s.corp.example"),
    ("GATEWAY_CREDENTIAL_FILE_DIRS", "/"),
    ("GATEWAY_CREDENTIAL_FILE_DIRS", "secrets"),
    ("GATEWAY_CREDENTIAL_FILE_DIRS", "/var/run/secrets/../.."),
])
def test_allowlist_settings_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load({name: value})


# --- use: a credential is never built for an account outside the allowlist -------------------------

def stored(account: dict[str, Any]) -> Any:
    """An account as read back from the tables: its shape checked, the allowlist not yet applied."""
    return parse_item("accounts", account, allowlist=None)


def test_attack_secret_read_outside_prefix_is_refused_by_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TABLES_CONNECTION", "AccountKey=the-tables-key")
    with pytest.raises(SettingsError) as caught:
        secret("GATEWAY_TABLES_CONNECTION", purpose="the api key of account aoai", prefix="GATEWAY_SECRET_")
    assert "the-tables-key" not in str(caught.value)


async def test_attack_stored_key_env_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TABLES_CONNECTION", "AccountKey=the-tables-key")
    credentials = Credentials(allowlist=Allowlist(), environ={})
    account = stored(acct(type="api-key", key_env="GATEWAY_TABLES_CONNECTION"))
    with pytest.raises(Unavailable) as caught:
        await credentials.for_account(account).auth_headers()
    assert "auth.key_env" in caught.value.message and "the-tables-key" not in caught.value.message
    assert credentials.status()["aoai"]["field"] == "key_env"
    await credentials.aclose()


@pytest.mark.parametrize("scope", ["https://storage.azure.com/.default", "https://management.azure.com/.default"])
async def test_attack_stored_scope_gets_no_token(scope: str) -> None:
    asked: list[str | None] = []

    def managed_identity(client_id: str | None) -> Any:
        asked.append(client_id)
        raise AssertionError("a managed-identity token was requested")

    credentials = Credentials(allowlist=Allowlist(), environ={}, managed_identity=managed_identity)
    account = stored(acct(**{**MI, "scope": scope}))
    with pytest.raises(Unavailable, match=r"account aoai: auth\.scope must be"):
        await credentials.for_account(account).auth_headers()
    assert (await credentials.refresh_all([account]))["aoai"] is not None
    assert asked == []
    assert credentials.status()["aoai"]["field"] == "scope"
    await credentials.aclose()


# --- over HTTP, against a real gateway --------------------------------------------------------------

ATTACKS: list[tuple[dict[str, Any], str]] = [
    (acct(type="api-key", key_env="GATEWAY_TABLES_CONNECTION"), "auth.key_env"),
    (acct(**{**SECRET, "secret_env": "IDENTITY_HEADER"}), "auth.secret_env"),
    (acct(**{**MI, "scope": "https://storage.azure.com/.default"}), "auth.scope"),
    (acct(**{**MI, "scope": "https://management.azure.com/.default"}), "auth.scope"),
    (acct("https://evil.example"), "endpoint"),
    (acct("https://x.openai.azure.com@evil.example"), "endpoint"),
    (acct("https://x.openai.azure.com.evil.example"), "endpoint"),
    (acct(**{**SECRET, "authority_host": "https://evil.example"}), "auth.authority_host"),
    (acct(**{**WI, "assertion": {**KUBE, "api_server": "https://evil.example"}}),
     "auth.assertion.api_server"),
    (acct(**{**WI, "assertion": {**KUBE, "token_path": "/etc/passwd"}}), "auth.assertion.token_path"),
    (acct(**{**WI, "assertion": {**KUBE, "ca_path": "/var/run/secrets/../../etc/passwd"}}),
     "auth.assertion.ca_path"),
    (acct(**{**WI, "assertion": {"source": "token-file", "path": "/var/run/secrets/../../etc/passwd"}}),
     "auth.assertion.path"),
    (acct(type="certificate", tenant_id=TENANT, client_id=CLIENT, certificate_path="/etc/passwd"),
     "auth.certificate_path"),
]


@pytest.fixture(scope="module")
def admin_gateway(new_world: NewWorld) -> Iterator[World]:
    env = {"GATEWAY_ADMINS": ROOT_ADMIN, "GATEWAY_UPSTREAM_HOSTS": "models.corp.example"}
    with new_world(env=env) as world:
        yield world


@pytest.mark.parametrize(("account", "field"), ATTACKS)
def test_attack_through_manage_is_refused_naming_the_field(admin_gateway: World,
                                                           account: dict[str, Any], field: str) -> None:
    body = {k: v for k, v in account.items() if k != "name"}
    response = admin_gateway.api("root").put("accounts/hijack", body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field and error["message"].startswith(f"{field}: ")
    assert "evil" not in error["message"] and "passwd" not in error["message"]   # the value is not echoed
    assert admin_gateway.api("root").get("accounts/hijack").status_code == 404


def test_manage_takes_the_hosts_the_settings_add(admin_gateway: World) -> None:
    body = {"kind": "azure-openai", "endpoint": "https://models.corp.example", "auth": API_KEY}
    assert admin_gateway.api("root").put("accounts/corp", body).status_code == 201


@pytest.mark.parametrize(("account", "field"), ATTACKS[::3])
def test_attack_through_apply_is_refused_and_changes_nothing(
        admin_gateway: World, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
        tmp_path: Path, account: dict[str, Any], field: str) -> None:
    doc = sandbox_config(idp, emulator)
    doc["accounts"].append({**account, "name": "hijack"})
    source = tmp_path / "gateway.yaml"
    source.write_text(yaml.safe_dump(doc), encoding="utf-8")
    for command in ("diff", "apply"):
        result = subprocess.run([sys.executable, "-m", "shared", command, "-f", str(source)], cwd=ROOT,
                                capture_output=True, text=True, env={**os.environ, **admin_gateway.env},
                                timeout=60)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"accounts[1].{field}: " in result.stderr
    assert "hijack" not in {a.name for a in admin_gateway.tables.load().accounts}


@pytest.fixture
def fresh_emulator(loop: BackgroundLoop) -> Iterator[AzureOpenAIEmulator]:
    """An emulator of this test's own, so what it received is this test's alone."""
    with emulator_running(loop, 0.005) as server:
        yield server


def test_attack_stored_bad_account_is_not_used(azurite: Azurite, idp: DevIdentityProvider,
                                               fresh_emulator: AzureOpenAIEmulator,
                                               start_gateway: Any) -> None:
    """Accounts written straight to the tables (before the allowlist, or by anything that bypassed
    it) that would send the tables' connection string, or any key, to the emulator."""
    url = fresh_emulator.url
    valid = {"kind": "azure-openai", "endpoint": url,
             "auth": {"type": "api-key", "key_env": EMULATOR_KEY_ENV}}
    bad = {"reads-tables": {**valid, "auth": {"type": "api-key", "key_env": "GATEWAY_TABLES_CONNECTION"}},
           "path-trick": {**valid, "endpoint": f"{url}/x.openai.azure.com"}}
    tables = Tables(azurite, unique_prefix())
    doc = sandbox_config(idp, fresh_emulator)
    doc["accounts"] += [{"name": name, **valid} for name in bad]
    doc["models"] += [{"name": name, "targets": [{"account": name, "deployment": "d"}]} for name in bad]
    doc["collaborators"] += [{"resource": f"model:{name}", "principal": "identity:developers",
                              "role": "viewer"} for name in bad]
    tables.apply(doc)

    async def overwrite(store: Any) -> None:   # bypassing every check, as an old version could have
        await store.write([Write("accounts", name, {"name": name, **account})
                           for name, account in bad.items()])

    tables._run(overwrite)
    gw = start_gateway(gateway_env(tables))
    token = idp.mint("alice", claims={"groups": ["developers"]}, audience="api://ai-gateway")
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=token, max_retries=0)
    for name in bad:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
        assert caught.value.status_code == 503
        assert caught.value.body["code"] == "unavailable"
    assert fresh_emulator.requests == []
    logs = gw.logs()
    assert "account reads-tables is not used" in logs and "auth.key_env: must name" in logs
    assert "account path-trick is not used" in logs and "endpoint: must use https" in logs
    assert azurite.connection_string.split("AccountKey=")[1].split(";")[0] not in logs
    ok = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert ok.choices[0].message.content and len(fresh_emulator.requests) == 1   # the rest still works


# -- deployments and api versions: segments of the URL the gateway calls with its own identity --------

TRAVERSALS = ["..", ".", "../../openai/files", "x/../../y", "dep%2F..", "dep?x=1", "dep#x", " dep", ""]


@pytest.mark.parametrize("deployment", TRAVERSALS)
def test_attack_deployment_path_traversal_is_refused_at_apply(deployment: str) -> None:
    doc = {"accounts": [{"name": "a", "endpoint": "https://x.openai.azure.com",
                         "auth": {"type": "managed-identity"}}],
           "models": [{"name": "m", "targets": [{"account": "a", "deployment": deployment}]}]}
    with pytest.raises(ConfigError) as caught:
        parse(doc)
    assert caught.value.field == "models[0].targets[0].deployment"


@pytest.mark.parametrize("version", ["2024-10-21&x=y", "../files", "latest", ""])
def test_attack_account_api_version_smuggling_is_refused(version: str) -> None:
    doc = {"accounts": [{"name": "a", "endpoint": "https://x.openai.azure.com",
                         "auth": {"type": "managed-identity"}, "api_version": version}]}
    with pytest.raises(ConfigError) as caught:
        parse(doc)
    assert caught.value.field == "accounts[0].api_version"


def test_attack_stored_deployment_traversal_is_never_called(azurite: Azurite, idp: DevIdentityProvider,
                                                          fresh_emulator: AzureOpenAIEmulator,
                                                          start_gateway: Any) -> None:
    """A model written straight to the tables with a deployment that walks up the upstream's paths
    (to reach other APIs of the account with the gateway's identity) is skipped, never called."""
    tables = Tables(azurite, unique_prefix())
    doc = sandbox_config(idp, fresh_emulator)
    doc["accounts"][0]["endpoint"] = fresh_emulator.url
    doc["models"].append({"name": "walker", "targets": [{"account": "emulator", "deployment": "d"}]})
    doc["collaborators"].append({"resource": "model:walker", "principal": "identity:developers",
                                 "role": "viewer"})
    tables.apply(doc)

    async def overwrite(store: Any) -> None:
        await store.write([Write("models", "walker", {"name": "walker", "targets": [
            {"account": "emulator", "deployment": ".."}]})])   # upstream: /openai/chat/completions

    tables._run(overwrite)
    gw = start_gateway(gateway_env(tables))
    token = idp.mint("alice", claims={"groups": ["developers"]}, audience="api://ai-gateway")
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=token, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="walker", messages=[{"role": "user", "content": "hi"}])
    assert fresh_emulator.requests == []
    assert "targets[0].deployment" in gw.logs()
