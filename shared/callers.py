"""Who is calling: this process's gateway, the configuration view and the caller's verified principal.

Both planes start every authenticated request here, so a token is extracted, and checked against the
same view it is then authorized with, in exactly one way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import runtime
from .auth.extract import extract_token

if TYPE_CHECKING:
    from .auth.identities import Principal
    from .config.snapshot import View
    from .http import Call


async def authenticate(call: Call) -> tuple[runtime.Gateway, View, Principal]:
    gw = await runtime.gateway()
    req = call.request
    token = extract_token(req.headers, req.query_params)
    view = await gw.snapshot.current()
    principal = await gw.authenticator.authenticate(token, view.config)
    call.principal = principal
    return gw, view, principal
