"""Registers the sandbox in the configuration tables without ever taking the user's work away.

The sandbox's own resources (the identity provider `sandbox`, the account `sandbox-aoai`, its models
and bindings) are created when missing and refreshed only while they are still as the sandbox last
wrote them: a record in the sandbox's own table (`<prefix>sandbox`) keeps a fingerprint of each write.
A stored resource that differs from its fingerprint was changed by the user, and is left as it is;
whatever else the tables hold is never read for writing, and nothing is ever deleted. Writes go
through the store's change sets, as `apply` and /manage do (audited, version moved on), each one
conditional on the entity as just read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from shared.config.allowlist import Allowlist
from shared.config.document import to_document
from shared.config.entities import Write, collaborator_key
from shared.config.kinds import BY_SECTION
from shared.config.plan import ORDER
from shared.config.schema import parse
from shared.config.store import ConfigStore
from shared.settings import load

AUDIENCE = "api://ai-gateway"
CONSOLE_CLIENT = "sandbox-console"           # the console's sign-in client at the sandbox provider
RECORD_TABLE = "sandbox"                     # <prefix>sandbox: the sandbox's alone
RECORD_KEY = ("sandbox", "written")          # PartitionKey, RowKey of the one record entity
ACTOR = "sandbox"                            # who the audit trail names for the sandbox's writes


def sandbox_document(jwks_uri: str, issuer: str, emulator_url: str, key_env: str) -> dict[str, Any]:
    return {
        "identity_providers": [{"name": "sandbox", "jwks_uri": jwks_uri, "issuer": issuer,
                                "audiences": [AUDIENCE], "console_client_id": CONSOLE_CLIENT}],
        "external_identities": [{"name": "sandbox-developers", "identity_provider": "sandbox",
                                 "claims": {"groups": "developers"}}],
        "accounts": [{"name": "sandbox-aoai", "kind": "azure-openai", "endpoint": emulator_url,
                      "auth": {"type": "api-key", "key_env": key_env}}],
        "models": [{"name": "gpt-4o", "targets": [{"account": "sandbox-aoai", "deployment": "gpt-4o"}]},
                   {"name": "text-embedding-3-small",
                    "targets": [{"account": "sandbox-aoai", "deployment": "text-embedding-3-small"}]}],
        "collaborators": [
            {"resource": "model:gpt-4o", "principal": "identity:sandbox-developers", "role": "viewer"},
            {"resource": "model:text-embedding-3-small", "principal": "identity:sandbox-developers",
             "role": "viewer"}],
    }


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one registration did, by label (e.g. `models gpt-4o`)."""

    created: tuple[str, ...]
    refreshed: tuple[str, ...]
    kept: tuple[str, ...]        # the user's changes to a sandbox resource, left as they are


def fingerprint(document: dict[str, Any]) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def desired_writes(doc: dict[str, Any], env: dict[str, str]) -> list[Write]:
    """The sandbox document as the store's writes, in dependency order, normalised the way the store
    keeps resources (so a fresh read compares equal), and checked under the gateway's allowlist."""
    normal = to_document(parse(doc, allowlist=Allowlist.from_settings(load(env))))
    out: list[Write] = []
    for section in ORDER:
        for item in normal.get(section, []):
            key = (collaborator_key(item["resource"], item["principal"]) if section == "collaborators"
                   else item["name"])
            out.append(Write(section, key, item))
    return out


def _label(w: Write) -> str:
    """`model gpt-4o`, `binding model:gpt-4o -> identity:sandbox-developers`: for the record and messages."""
    kind = BY_SECTION.get(w.section)
    return f"{kind.singular if kind else 'binding'} {w.key.replace(chr(10), ' -> ')}"


async def _read_record(store: ConfigStore) -> dict[str, str]:
    table = store.table(RECORD_TABLE)
    await table.ensure()
    entity = await table.get(*RECORD_KEY)
    return dict(json.loads(entity["written"])) if entity and entity.get("written") else {}


async def _write_record(store: ConfigStore, written: dict[str, str]) -> None:
    entity = {"PartitionKey": RECORD_KEY[0], "RowKey": RECORD_KEY[1],
              "written": json.dumps(written, sort_keys=True)}
    await store.table(RECORD_TABLE).replace(entity)


async def register(doc: dict[str, Any], env: dict[str, str]) -> Outcome:
    """Create what of `doc` is missing and refresh what the sandbox still owns; `env` is the gateway's
    (its tables, and its allowlist: plain http on loopback for the sandbox's servers)."""
    wanted = desired_writes(doc, env)
    store = ConfigStore.from_settings(load(env))
    try:
        record = await _read_record(store)
        writes: list[Write] = []
        expected: dict[tuple[str, str], str | None] = {}
        created, refreshed, kept = [], [], []
        owned: dict[str, str] = {}
        for w in wanted:
            assert w.document is not None
            label, target = _label(w), fingerprint(w.document)
            found = await store.get(w.section, w.key)
            stored = None if found is None else fingerprint(found[0])
            if stored is not None and stored not in (target, record.get(label)):
                kept.append(label)          # changed since the sandbox wrote it: the user's now
                continue
            owned[label] = target
            if stored != target:
                writes.append(w)
                expected[(w.section, w.key)] = None if found is None else found[1]
                (created if found is None else refreshed).append(label)
        await store.write(writes, actor=ACTOR, expected=expected)
        await _write_record(store, owned)
        return Outcome(tuple(created), tuple(refreshed), tuple(kept))
    finally:
        await store.aclose()
