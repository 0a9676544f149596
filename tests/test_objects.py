"""Ownership records of objects made upstream through the gateway, on Azurite: found by id by anyone
the record admits, listed per owner, gone after a delete, whatever characters the upstream's ids hold."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from azure.data.tables.aio import TableServiceClient

from sandbox.azurite import Azurite
from shared.access import Policy
from shared.config.schema import parse
from shared.objects.access import may_use
from shared.objects.store import ObjectStore, Owned
from tests.harness import unique_prefix

ALICE, BOB, CAROL = "user:okta/alice", "user:okta/bob", "user:okta/carol"


def _run(azurite: Azurite, work: Callable[[ObjectStore], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        async with TableServiceClient.from_connection_string(azurite.connection_string) as service:
            return await work(ObjectStore(service, unique_prefix()))
    return asyncio.run(go())


@pytest.mark.parametrize("object_id", ["resp_68af3c", "file-abc123", "batch_x/y#z?w", "vs_ünï\\côde"])
def test_a_record_is_found_by_id_listed_for_its_owner_and_gone_after_forget(azurite: Azurite,
                                                                           object_id: str) -> None:
    owned = Owned("file", object_id, "aoai-east", ALICE, "gpt-4o", created=1.0, expires=2.0)

    async def work(store: ObjectStore) -> tuple[Any, ...]:
        await store.record(owned)
        found = await store.find("file", object_id)
        mine, theirs = await store.owned_by("file", ALICE), await store.owned_by("file", BOB)
        other_kind = await store.find("response", object_id)
        await store.forget(owned)
        return found, mine, theirs, other_kind, await store.find("file", object_id), \
            await store.owned_by("file", ALICE)

    found, mine, theirs, other_kind, after, mine_after = _run(azurite, work)
    assert found == owned and mine == [owned] and theirs == [] and other_kind is None
    assert after is None and mine_after == []


def test_another_instance_finds_a_record_written_elsewhere(azurite: Azurite) -> None:
    owned = Owned("response", "resp_1", "aoai-east", ALICE, None)

    async def go() -> tuple[Owned | None, Owned | None]:
        async with TableServiceClient.from_connection_string(azurite.connection_string) as service:
            prefix = unique_prefix()
            one, two = ObjectStore(service, prefix), ObjectStore(service, prefix)
            missing = await two.find("response", "resp_1")     # an absence is not cached
            await one.record(owned)
            return missing, await two.find("response", "resp_1")

    missing, found = asyncio.run(go())
    assert missing is None and found == owned


CONFIG = parse({
    "identity_providers": [{"name": "okta", "jwks_uri": "https://okta.example.com/keys"}],
    "workspaces": [{"name": "research"}],
    "accounts": [{"name": "aoai", "endpoint": "https://a.openai.azure.com",
                  "auth": {"type": "managed-identity"}}],
    "models": [{"name": "gpt-4o", "workspace": "research",
                "targets": [{"account": "aoai", "deployment": "d"}]}],
    "collaborators": [
        {"resource": "model:gpt-4o", "principal": BOB, "role": "viewer"},
        {"resource": "workspace:research", "principal": CAROL, "role": "manager"},
        {"resource": "gateway:default", "principal": "user:okta/root", "role": "admin"},
    ],
})


@pytest.mark.parametrize(("principal", "model", "allowed"), [
    (ALICE, "gpt-4o", True),                 # the owner
    (BOB, "gpt-4o", False),                  # a viewer of the same model is not its owner
    (CAROL, "gpt-4o", True),                 # a manager of the model's workspace
    ("user:okta/root", "gpt-4o", True),      # an admin
    (BOB, None, False),
    ("user:okta/root", None, True),
    (CAROL, None, False),
])
def test_who_may_use_an_object(principal: str, model: str | None, allowed: bool) -> None:
    owned = Owned("response", "resp_1", "aoai", ALICE, model)
    assert may_use(owned, {principal}, Policy(CONFIG, frozenset())) is allowed
