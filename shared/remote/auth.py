"""The headers the gateway authenticates itself with to an MCP server or agent.

Never the caller's credentials: the caller's token was issued for the gateway, and an MCP server that
accepted it could replay it against anything else that trusts the same issuer. Per `auth.type`:
`none`; `headers` (static values from GATEWAY_SECRET_* variables); `entra` (a token for the server's
scope from the gateway's own identity); `identity-assertion` (a short-lived JWT about the caller that
the gateway signs, see assertions.py); `oauth` (the caller's own token at that server, obtained once
through the gateway's authorization-code flow).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from ..settings import SettingsError, secret

if TYPE_CHECKING:
    from ..auth.identities import Principal
    from ..config.model import Agent, McpServer
    from ..config.snapshot import View
    from .assertions import AssertionSigner

class RemoteAuthProblem(Exception):
    """The gateway cannot authenticate to the server for this caller. `kind`: unavailable (its
    credential is broken: the operator's to fix) or authorization_required (oauth: the caller must
    authorize the gateway first, at `authorize_url`). `message` is safe to show the caller."""

    def __init__(self, kind: str, message: str, *, authorize_url: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.authorize_url = authorize_url


class Mode(Protocol):
    """An outbound auth mode that needs state of its own (entra's credentials, oauth's tokens)."""

    async def headers(self, target: McpServer | Agent, principal: Principal,
                      view: View) -> dict[str, str]: ...


class RemoteAuthenticator:
    """Dispatches on the server's auth type. Each mode is a small object with
    `async headers(target, principal, view) -> dict[str, str]`."""

    def __init__(self, *, secret_prefix: str, assertions: AssertionSigner,
                 modes: Mapping[str, Mode] | None = None) -> None:
        self._prefix = secret_prefix
        self._assertions = assertions
        self._modes = dict(modes or {})      # entra, oauth: added by the services that hold them

    async def headers(self, target: McpServer | Agent, principal: Principal, view: View) -> dict[str, str]:
        kind = target.auth.type
        if kind == "none":
            return {}
        if kind == "headers":
            return self._static(target)
        if kind == "identity-assertion":
            assert target.url is not None
            return {"Authorization": "Bearer " + self._assertions.assertion(principal, audience=target.url)}
        mode = self._modes.get(kind)
        if mode is None:
            raise RemoteAuthProblem("unavailable", f"outbound auth {kind} is not available in this gateway")
        return await mode.headers(target, principal, view)

    def _static(self, target: McpServer | Agent) -> dict[str, str]:
        out = {}
        for header, env in target.auth.options.get("headers_env", {}).items():
            try:
                out[header] = secret(env, purpose=f"header {header}", prefix=self._prefix)
            except SettingsError:
                raise RemoteAuthProblem("unavailable", f"the header {header} this server needs is not "
                                        "configured (its environment variable is unset)") from None
        return out
