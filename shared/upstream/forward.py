"""Sends a caller's request to a model's targets in order, until one answers.

Each target gets one attempt (`attempt`); a failed attempt moves on to the next target before any
byte reaches the caller; when every target failed, `failover.combined_failure` says what the caller
sees. The result is a plain `Forwarded`: the `Answer` (the HTTP edge turns it into a response with
`response.to_starlette`) or that failure, and which account and deployment answered after how many
attempts (for the request's log line). Usage goes to the sink for every answered request (see
`usage_scan` for where it is read, and `relay` for streams whose caller leaves early); a streaming
chat/completions or completions request that did not ask for usage is sent asking for it, and the
caller's stream does not show it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from ..config.model import Account
from ..errors import GatewayError, Unavailable
from .answer import Forwarded
from .attempt import Transport
from .credentials import Credentials
from .failover import combined_failure
from .outbound import Outbound, UsageSink, request_headers
from .usage_scan import body_with_usage_requested, injects_usage, with_usage_requested

log = logging.getLogger("gateway.upstream.forward")


class Forwarder:
    def __init__(self, *, credentials: Credentials, timeout_seconds: float,
                 allow_http_loopback: bool = False, connect_timeout_seconds: float = 10.0) -> None:
        self._transport = Transport(credentials=credentials, timeout_seconds=timeout_seconds,
                                    allow_http_loopback=allow_http_loopback,
                                    connect_timeout_seconds=connect_timeout_seconds)

    @property
    def transport(self) -> Transport:
        """The process's connection to its accounts (for requests about one stored object)."""
        return self._transport

    async def forward(self, out: Outbound, accounts: Mapping[str, Account],
                      sink: UsageSink | None = None) -> Forwarded:
        injected = injects_usage(out.operation, out.doc)
        if injected:
            out = dataclasses.replace(out, doc=with_usage_requested(out.doc),
                                      body=body_with_usage_requested(out.body, out.doc))
        headers = request_headers(out)
        failures: list[GatewayError] = []
        attempts = 0
        for target in out.model.targets:
            account = accounts.get(target.account)
            if account is None:
                # Missing, or refused at load for breaking the allowlist (status and the log say why).
                failures.append(Unavailable(f"model {out.model.name}: account {target.account!r} is not "
                                            "configured or not usable",
                                            public="the model's upstream account is not usable now; the "
                                                   "gateway's status and log say why"))
                continue
            attempts += 1
            try:
                answer = await self._transport.attempt(out, account, target, headers, injected, sink)
            except GatewayError as exc:
                failures.append(exc)
                log.warning("request %s: %s", out.request_id, exc.message)
                continue
            return Forwarded(answer, account.name, target.deployment, attempts)
        return Forwarded(combined_failure(out.model.name, failures), None, None, attempts)

    async def aclose(self) -> None:
        await self._transport.aclose()
