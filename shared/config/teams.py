"""Reads the `teams` section of the configuration file (docs/configuration.md), naming the field at fault.

A team lists users and external identities. It cannot list another team: a team's managers change
its members, so a nested team would let the managers of one team decide who holds the roles of
another.
"""

from __future__ import annotations

from typing import Any

from .fields import ConfigError, parse_principal, principal_reference, read_name, read_record, read_text
from .model import Team

MAX_MEMBERS = 500
"""Per team: its document stays far below a table entity's 64 KiB property, and a snapshot's
member -> teams index stays small. A larger group belongs in the IdP, as an external identity."""


def read_member(value: Any, where: str) -> str:
    text = str(read_text(value, where))
    if text.startswith("team:"):
        raise ConfigError(where, f"{text!r}: teams do not nest; list the other team's members instead")
    return parse_principal(text, where)


def read_team(raw: Any, where: str) -> Team:
    d = read_record(raw, where, ("name",), ("members",))
    members = d.get("members")
    if members is None:
        members = []
    if not isinstance(members, list):
        raise ConfigError(f"{where}.members", "must be a list of user: or identity: principals")
    if len(members) > MAX_MEMBERS:
        raise ConfigError(f"{where}.members", f"must list at most {MAX_MEMBERS} members (an external "
                                              "identity can stand for a larger group)")
    seen: set[str] = set()
    for i, value in enumerate(members):
        member = read_member(value, f"{where}.members[{i}]")
        if member in seen:
            raise ConfigError(f"{where}.members[{i}]", f"{member} is listed twice")
        seen.add(member)
    return Team(name=read_name(d["name"], f"{where}.name"), members=tuple(sorted(seen)))


def references(team: Team) -> list[tuple[str, str, str]]:
    """What each member names (its identity provider or external identity), as (field, section, name)
    with the field relative to the team. Members are kept sorted, not in the file's order, so the
    field is `members` and the message names the member."""
    return [("members", *principal_reference(member)) for member in team.members]


def document(team: Team) -> dict[str, Any]:
    return {"name": team.name, "members": list(team.members)}
