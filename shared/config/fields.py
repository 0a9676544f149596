"""The readers every section of the configuration file is built from: each checks one value and names
the field at fault, so a message always says where in the file to look."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .kinds import BY_SECTION

NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?$")


class ConfigError(ValueError):
    """The file is invalid; `field` is the path of the offending member, e.g. models[0].targets."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def read_record(value: Any, where: str, required: tuple[str, ...],
                optional: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(where, "must be a mapping")
    for key in value:
        if key not in required and key not in optional:
            raise ConfigError(f"{where}.{key}", "unknown field")
    for key in required:
        if value.get(key) in (None, ""):
            raise ConfigError(f"{where}.{key}", "is required")
    return dict(value)


def read_text(value: Any, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(where, "must be a non-empty string")
    if any(ord(c) < 0x20 for c in value):
        raise ConfigError(where, "must not contain control characters")
    return value


def read_name(value: Any, where: str) -> str:
    text = read_text(value, where)
    assert text is not None
    if not NAME_RE.match(text):
        raise ConfigError(where, f"{text!r} must be letters, digits and hyphens (at most 64)")
    return text


def read_flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(where, "must be true or false")
    return value


def read_matching(value: Any, where: str, pattern: re.Pattern[str], rule: str) -> str:
    text = str(read_text(value, where))
    if not pattern.match(text):
        raise ConfigError(where, rule)
    return text


def parse_principal(text: str, where: str, *, teams: bool = False) -> str:
    """user:<provider>/<unique id> or identity:<name>; team:<name> too where `teams` (bindings): a
    setting, rule or team member naming a team is refused, since a team's managers change who is in it."""
    if text.startswith("identity:"):
        read_name(text.removeprefix("identity:"), where)
        return text
    if text.startswith("user:"):
        provider, sep, unique_id = text.removeprefix("user:").partition("/")
        if not sep or not unique_id:
            raise ConfigError(where, f"{text!r} must be user:<provider>/<unique id>")
        read_name(provider, where)
        return text
    if teams and text.startswith("team:"):
        read_name(text.removeprefix("team:"), where)
        return text
    forms = "user:, identity: or team:" if teams else "user: or identity:"
    raise ConfigError(where, f"{text!r} must start with {forms}")


def principal_reference(principal: str) -> tuple[str, str]:
    """(section, name) of what a parsed principal names: its identity provider, external identity or team."""
    if principal.startswith("identity:"):
        return "external_identities", principal.removeprefix("identity:")
    if principal.startswith("team:"):
        return "teams", principal.removeprefix("team:")
    return "identity_providers", principal.removeprefix("user:").partition("/")[0]


def unknown_reference(section: str, name: str) -> str:
    """The one wording of a reference to something absent (or that the caller may not see)."""
    return f"unknown {BY_SECTION[section].singular} {name!r}"


MAX_COUNT = 10**12     # far beyond any real limit, and exact in JSON, table storage and Redis alike


def read_count(value: Any, where: str) -> int:
    """A positive whole number (requests, tokens): a bool is not one, nor is 1.5."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(where, "must be a whole number")
    if not 0 < value <= MAX_COUNT:
        raise ConfigError(where, f"must be at least 1 and at most {MAX_COUNT:,}")
    return value


def read_number(value: Any, where: str, *, positive: bool, most: float) -> float:
    """A finite number (USD): NaN and infinities are refused, as is anything outside (0 or more, `most`]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(where, "must be a number")
    if value < 0 or (positive and value == 0) or value > most:
        floor = "more than 0" if positive else "at least 0"
        raise ConfigError(where, f"must be {floor} and at most {most:,g}")
    return float(value)
