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


# -- pruning: the clock is the `now` each call is given --------------------------------------------------

NOW = 1_800_000_000.0
HOUR = 3600.0


def _expiring(object_id: str, expires: float | None, kind: str = "file", owner: str = ALICE) -> Owned:
    return Owned(kind, object_id, "aoai", owner, "gpt-4o", created=NOW - 40 * 86_400, expires=expires)


def test_prune_drops_records_an_hour_past_their_expiry(azurite: Azurite) -> None:
    long_gone = _expiring("file-old", NOW - 2 * HOUR)
    old_response = _expiring("resp_old", NOW - 31 * 86_400, kind="response", owner=BOB)
    in_grace = _expiring("file-recent", NOW - HOUR / 2)
    alive = _expiring("file-alive", NOW + 10)
    forever = _expiring("file-forever", None)

    async def work(store: ObjectStore) -> tuple[Any, ...]:
        for owned in (long_gone, old_response, in_grace, alive, forever):
            await store.record(owned)
        pruned = await store.prune(NOW, 100)
        found = {o.object_id: await store.find(o.kind, o.object_id)
                 for o in (long_gone, old_response, in_grace, alive, forever)}
        return pruned, found, await store.owned_by("file", ALICE), await store.owned_by("response", BOB)

    pruned, found, alices, bobs = _run(azurite, work)
    assert pruned == 2
    assert found == {"file-old": None, "resp_old": None, "file-recent": in_grace, "file-alive": alive,
                     "file-forever": forever}
    assert sorted(o.object_id for o in alices) == ["file-alive", "file-forever", "file-recent"]
    assert bobs == []


def test_prune_is_bounded_per_run(azurite: Azurite) -> None:
    expired = [_expiring(f"file-{n}", NOW - 2 * HOUR) for n in range(5)]

    async def work(store: ObjectStore) -> tuple[list[int], list[Owned]]:
        for owned in expired:
            await store.record(owned)
        runs = [await store.prune(NOW, 3)]
        while runs[-1]:
            runs.append(await store.prune(NOW, 3))
        return runs, await store.owned_by("file", ALICE)

    runs, left = _run(azurite, work)
    assert all(n <= 3 for n in runs) and sum(runs) == 5 and runs[0] == 3
    assert left == []


def test_prune_also_takes_an_owner_row_left_behind(azurite: Azurite) -> None:
    """A forget that failed between its two deletes leaves the owner's row: it expires the same way."""
    owned = _expiring("file-half", NOW - 2 * HOUR)

    async def work(store: ObjectStore) -> tuple[int, list[Owned]]:
        await store.record(owned)
        async with TableServiceClient.from_connection_string(azurite.connection_string) as service:
            await service.get_table_client(store.table_name).delete_entity("file", "file-half")
        return await store.prune(NOW, 10), await store.owned_by("file", ALICE)

    pruned, left = _run(azurite, work)
    assert pruned == 1 and left == []


def test_the_timer_prunes_at_most_hourly(azurite: Azurite, idp: Any, emulator: Any,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The timer's pass prunes; a pass within the hour does not (nothing on a request path does)."""
    from shared import prewarm, runtime
    from tests.harness import Tables, gateway_env, sandbox_config

    tables = Tables(azurite, unique_prefix())
    tables.apply(sandbox_config(idp, emulator))
    for name, value in gateway_env(tables).items():
        monkeypatch.setenv(name, value)

    async def go() -> tuple[Any, ...]:
        try:
            gw = await runtime.gateway()
            expired = Owned("file", "file-" + "a" * 8, "emulator", ALICE, "gpt-4o", expires=1000.0)
            await gw.objects.record(expired)
            first = await prewarm.run(gw)
            await gw.objects.record(expired)
            second = await prewarm.run(gw)
            return first.get("objects"), second.get("objects"), await gw.objects.owned_by("file", ALICE)
        finally:
            await runtime.shutdown()

    first, second, still = asyncio.run(go())
    assert first == {"pruned": 1} and second is None and [o.object_id for o in still] == ["file-aaaaaaaa"]


def test_a_file_gone_upstream_is_forgotten_on_retrieve(new_world: Any) -> None:
    """It expired or was deleted outside the gateway: the caller gets the 404 of an unknown id, and
    the record goes, so the next request does not reach the upstream."""
    import io

    import openai

    from tests.harness import sdk_client

    with new_world() as world:
        alice = sdk_client(world, "alice", "v1", api_version="2024-10-21")
        created = alice.files.create(file=("a.jsonl", io.BytesIO(b"{}\n"), "application/jsonl"),
                                     purpose="batch", extra_body={"model": "gpt-4o"})
        del world.emulator.files.files[created.id]
        with pytest.raises(openai.NotFoundError) as gone:
            alice.files.retrieve(created.id)
        assert gone.value.body["code"] == "not_found"
        before = len(world.emulator.requests)
        with pytest.raises(openai.NotFoundError):
            alice.files.retrieve(created.id)
        assert len(world.emulator.requests) == before
        assert alice.files.list().data == []
