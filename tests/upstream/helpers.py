"""Small helpers shared by the upstream-credential tests: accounts, a movable clock, one real call."""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import trustme

from shared.config.model import Account
from shared.config.schema import parse_item

TENANT = "00000000-0000-0000-0000-0000000000aa"
CLIENT = "11111111-1111-1111-1111-111111111111"
MI_CLIENT = "22222222-2222-2222-2222-222222222222"


@dataclass(frozen=True)
class TLSFiles:
    ca: trustme.CA
    ca_file: str
    server: ssl.SSLContext     # presents a certificate for 127.0.0.1 and localhost
    client: ssl.SSLContext     # trusts only the test CA


def account(auth: dict[str, Any], *, name: str = "aoai", endpoint: str = "https://acme.openai.azure.com",
            kind: str = "azure-openai") -> Account:
    """An account as the configuration file would give it (its shape validated by the real schema; the
    allowlist is applied by the `Credentials` under test, as for a stored account)."""
    return parse_item("accounts", {"name": name, "kind": kind, "endpoint": endpoint, "auth": auth},
                      allowlist=None)


class Clock:
    """Wall time, until a test moves it forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


async def chat(endpoint: str, headers: dict[str, str]) -> tuple[int, Any]:
    """One chat completion against the emulator with the gateway's upstream headers."""
    url = f"{endpoint}/openai/deployments/gpt-4o-dep/chat/completions?api-version=2024-10-21"
    async with aiohttp.ClientSession() as session, session.post(
            url, headers=headers, json={"messages": [{"role": "user", "content": "hello"}]}) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if text else None
