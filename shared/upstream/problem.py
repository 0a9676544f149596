"""The one failure every upstream-credential part raises: why no token could be had, and what to fix.

A `CredentialProblem` carries words an operator can act on (never a token, secret or assertion) and
`field`, the name of what to fix: a configuration field (`tenant_id`, `assertion.path`, ...) or, for
a federation mismatch, the federated credential's `issuer`, `subject` or `audience`. `Credentials`
turns it into `Unavailable` (503) for callers and keeps it for `status()`.
"""

from __future__ import annotations


class CredentialProblem(Exception):
    def __init__(self, message: str, *, field: str | None = None, transient: bool = False,
                 trace_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.transient = transient     # an outage or timeout, not a configuration mistake
        self.trace_id = trace_id       # Entra's trace id, for a support request
