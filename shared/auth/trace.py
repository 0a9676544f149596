"""The outcome of each check, for the explain tool, and the one refusal value the checks raise.

A `Trace` is optional everywhere: the request path passes none and pays nothing; `/manage/explain`
passes one and gets every check with pass/fail and reason, the chosen provider and why, and where the
key came from and how old it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Refused(Exception):
    """One check failed. `reason` becomes `InvalidToken(reason)`: it never contains the token and
    every attacker-controlled part of it is escaped (`redact.show`). When the reason names
    configuration (issuers, audiences, provider names, claim names, fetch errors), `public` says the
    same without it: that is what the caller reads; the reason goes to the log and to explain."""

    def __init__(self, check: str, reason: str, public: str | None = None) -> None:
        super().__init__(reason)
        self.check = check
        self.reason = reason
        self.public = public


@dataclass(slots=True)
class Context:
    """What is known about a token so far, filled in as parsing gets there, for the log line of a
    refusal. Raw attacker-controlled values: escape them (`redact.show`) when logging."""

    iss: object = None
    kid: object = None
    alg: object = None
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class KeyReport:
    """Where the verification key came from."""

    provider: str
    kid: str | None
    alg: str
    thumbprint: str
    jwks_uri: str
    state: str          # fresh | stale (served past its TTL) | fetched (during this request)
    age_seconds: float  # since the key set was fetched


@dataclass(slots=True)
class Trace:
    checks: list[Check] = field(default_factory=list)
    provider: str | None = None
    provider_reason: str | None = None
    key: KeyReport | None = None

    def passed(self, name: str, detail: str = "") -> None:
        self.checks.append(Check(name, True, detail))

    def failed(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, False, detail))

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [{"check": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks],
            "provider": self.provider,
            "provider_reason": self.provider_reason,
            "key": None if self.key is None else {
                "provider": self.key.provider, "kid": self.key.kid, "alg": self.key.alg,
                "thumbprint": self.key.thumbprint, "jwks_uri": self.key.jwks_uri,
                "state": self.key.state, "age_seconds": round(self.key.age_seconds, 3)},
        }
