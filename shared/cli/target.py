"""Which store a command works on, said before it writes: the storage account, its table host and the
table prefix, so an operator sees a wrong target before anything changes. Taken from the connection
string or the endpoint; the key, a shared access signature or any other credential is never shown."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..settings import Settings
from .output import note

DEV_ACCOUNT = "devstoreaccount1"      # Azurite's well-known account (UseDevelopmentStorage=true)
DEV_TABLE_HOST = "127.0.0.1:10002"


@dataclass(frozen=True, slots=True)
class Target:
    account: str
    host: str
    table_prefix: str

    def line(self) -> str:
        return f"target: {self.account} ({self.host}), tables {self.table_prefix}*"

    def as_dict(self) -> dict[str, str]:
        return {"account": self.account, "host": self.host, "table_prefix": self.table_prefix}


def target_of(settings: Settings) -> Target:
    settings.require_tables()
    if settings.tables_connection:
        account, host = _from_connection(settings.tables_connection)
    else:
        account, host = _from_url(settings.tables_endpoint)
    return Target(account or "?", host or "?", settings.table_prefix)


def announce(settings: Settings) -> Target:
    """The target, on stderr (stdout is the command's result, and stays JSON with --output json)."""
    target = target_of(settings)
    note(target.line())
    return target


def _from_connection(text: str) -> tuple[str, str]:
    parts: dict[str, str] = {}
    for piece in text.split(";"):
        name, equals, value = piece.partition("=")
        if equals:
            parts[name.strip().lower()] = value.strip()
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return DEV_ACCOUNT, DEV_TABLE_HOST
    account = parts.get("accountname", "")
    if parts.get("tableendpoint"):
        found, host = _from_url(parts["tableendpoint"])
        return account or found, host
    if account:
        return account, f"{account}.table.{parts.get('endpointsuffix') or 'core.windows.net'}"
    return "", ""


def _from_url(url: str) -> tuple[str, str]:
    """(account, host[:port]) of a table endpoint: the account is the host's first label in Azure,
    the first path segment on an emulator's address (http://127.0.0.1:10002/devstoreaccount1)."""
    try:
        split = urlsplit(url)
        hostname, port = split.hostname or "", split.port
    except ValueError:
        return "", ""
    shown = f"[{hostname}]" if ":" in hostname else hostname
    host = f"{shown}:{port}" if port else shown
    segment = split.path.strip("/").split("/")[0]
    return (segment if _is_address(hostname) else hostname.split(".")[0]), host


def _is_address(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True
