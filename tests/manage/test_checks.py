"""Operator tools the console uses: a stored identity provider's keys and an account's credential
checked on request ("validate JWKS", "get a token now": in words, never a secret), and the caller's
own role on a resource (which buttons to show)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from tests.harness import EMULATOR_KEY, EMULATOR_KEY_ENV, NewWorld, World, free_port, sandbox_config
from tests.manage.conftest import ROOT_ADMIN

CLOSED = free_port()      # nothing listens there


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> Iterator[World]:
    doc = sandbox_config(idp, emulator)
    doc["identity_providers"].append({"name": "gone", "jwks_uri": f"http://127.0.0.1:{CLOSED}/keys"})
    doc["accounts"].append({"name": "keyless", "kind": "azure-openai", "endpoint": emulator.url,
                            "auth": {"type": "api-key", "key_env": "GATEWAY_SECRET_NOT_SET"}})
    with new_world(config=doc, env={"GATEWAY_ADMINS": ROOT_ADMIN}) as started:
        # stored while another allowlist was in force (a host the running gateway does not admit)
        doc["accounts"].append({"name": "elsewhere", "kind": "azure-openai",
                                "endpoint": "https://upstream.internal",
                                "auth": {"type": "api-key", "key_env": EMULATOR_KEY_ENV}})
        started.tables.apply(doc, GATEWAY_UPSTREAM_HOSTS="upstream.internal")
        yield started


def test_a_reachable_provider_reports_its_key_ids(world: World) -> None:
    answer = world.api("root").post("identity-providers/dev/check")
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["ok"] is True and report["error"] is None
    assert report["kids"] and report["jwks_uri"] == world.idp.jwks_uri


def test_an_unreachable_provider_reports_why_in_words(world: World) -> None:
    report = world.api("root").post("identity-providers/gone/check").json()
    assert report["ok"] is False and report["kids"] == []
    assert str(CLOSED) in report["jwks_uri"]
    assert report["error"] and "Traceback" not in report["error"]


def test_an_account_with_its_key_reports_ok_and_never_the_key(world: World) -> None:
    answer = world.api("root").post("accounts/emulator/check")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"name": "emulator", "ok": True, "auth": "api-key", "expires_on": None,
                             "error": None, "field": None}
    assert EMULATOR_KEY not in answer.text


def test_an_account_without_its_secret_names_the_field_to_fix(world: World) -> None:
    report = world.api("root").post("accounts/keyless/check").json()
    assert report["ok"] is False and report["field"] == "key_env"
    assert "GATEWAY_SECRET_NOT_SET" in report["error"]


def test_an_account_the_allowlist_refuses_is_reported_and_never_used(world: World) -> None:
    """The check acts as the gateway does: an account its allowlist refuses is not asked for a
    credential (its key is set: a check that ignored the allowlist would say ok)."""
    report = world.api("root").post("accounts/elsewhere/check").json()
    assert report["ok"] is False
    assert report["error"].startswith("the gateway does not use it as stored: ")
    assert "endpoint" in report["error"]


@pytest.mark.parametrize(("who", "path", "status"), [
    ("alice", "identity-providers/dev/check", 403),      # not an admin: refused whatever the name
    ("alice", "identity-providers/nope/check", 403),
    ("alice", "accounts/emulator/check", 403),
    ("root", "identity-providers/nope/check", 404),
    ("root", "accounts/nope/check", 404),
    ("root", "accounts/Bad%20Name/check", 404),
])
def test_refusals(world: World, who: str, path: str, status: int) -> None:
    answer = world.api(who, groups=["developers"]).post(path)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] in ("permission_denied", "not_found")


@pytest.mark.parametrize(("who", "resource", "admin", "role"), [
    ("root", "model:gpt-4o", True, "admin"),
    ("root", None, True, None),
    ("alice", "model:gpt-4o", False, "viewer"),        # through identity:developers
    ("alice", "model:secret-model", False, None),      # no role: the same answer as ...
    ("alice", "model:no-such-model", False, None),     # ... a model that does not exist
    ("alice", "gateway:default", False, None),
])
def test_whoami_tells_the_callers_own_role(world: World, who: str, resource: str | None, admin: bool,
                                           role: str | None) -> None:
    params = {"resource": resource} if resource else None
    answer = world.api(who, groups=["developers"]).get("whoami", params=params)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["principal"], report["admin"], report["role"]) == (f"user:dev/{who}", admin, role)
    assert "identity:developers" in report["principals"]


def test_whoami_refuses_a_resource_that_is_no_resource(world: World) -> None:
    answer = world.api("alice").get("whoami", params={"resource": "nonsense"})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "resource"
