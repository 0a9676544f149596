"""`GET /manage/remote-calls`: the audit records of MCP tool calls and agent messages.

A gateway admin sees every record; any other caller sees the records of the MCP servers and agents
they manage (manager on `mcp-server:N` / `agent:N`, or on its workspace), so a resource's managers can
follow how it is used without an admin. Filters: `since` and `until` (ISO dates or times, or durations
back from now: `7d`), `kind` (mcp or agent), `target` (its name), `principal`. With `group_by` (a
comma-separated list of `user`, `target`, `tool`, `day`) the answer is per group: calls, calls per
outcome, p50 and p95 latency in milliseconds; without it, the records themselves, a page at a time
(`limit`, `cursor`). A record never holds argument values, only their hash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..callers import authenticate
from ..config.audit import parse_since
from ..config.schema import NAME_RE, ConfigError, parse_principal
from ..errors import InvalidRequest, NotFound
from ..http import Call
from ..remote.audit_store import CALL_GROUPS, MAX_REPORT_RECORDS, CallQuery, group_calls
from . import authz, pages

PARAMS = frozenset({"since", "until", "kind", "target", "principal", "group_by", "limit", "cursor"})
KINDS = {"mcp": "mcp-server", "agent": "agent"}
"""A record's kind and the access prefix of its target."""


def _time(req: Request, name: str) -> float | None:
    text = req.query_params.get(name)
    if text is None:
        return None
    try:
        value = parse_since(text)
        datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidRequest(f"{name}: use an ISO date or time, or a duration like 30m, 12h, 7d",
                             param=name) from None
    return value


def _query(req: Request) -> CallQuery:
    q = req.query_params
    unknown = sorted(set(q) - PARAMS)
    if unknown:
        raise InvalidRequest(f"{unknown[0]}: unknown parameter", param=unknown[0])
    kind, target, principal = q.get("kind"), q.get("target"), q.get("principal")
    if kind is not None and kind not in KINDS:
        raise InvalidRequest("kind: mcp or agent", param="kind")
    if target is not None and not NAME_RE.match(target):
        raise InvalidRequest("target: the name of an MCP server or agent", param="target")
    if principal is not None:
        try:
            principal = parse_principal(principal, "principal")
        except ConfigError as exc:
            raise InvalidRequest(f"principal: {exc.problem}", param="principal") from None
    return CallQuery(_time(req, "since"), _time(req, "until"), kind, target, principal)


def _group_by(req: Request) -> tuple[str, ...] | None:
    text = req.query_params.get("group_by")
    if text is None:
        return None
    out: list[str] = []
    for name in (part.strip().lower() for part in text.split(",")):
        if name not in CALL_GROUPS:
            raise InvalidRequest("group_by: a comma-separated list of user, target, tool, day",
                                 param="group_by")
        if CALL_GROUPS[name] not in out:
            out.append(CALL_GROUPS[name])
    return tuple(out)


class Visibility:
    """Which records the caller may see: all (admin), else those of the targets they manage."""

    def __init__(self, caller: authz.Caller) -> None:
        self._caller = caller
        self._seen: dict[tuple[str, str], bool] = {}

    def __call__(self, kind: str, target: str) -> bool:
        if self._caller.is_admin:
            return True
        key = (kind, target)
        if key not in self._seen:
            prefix = KINDS.get(kind)
            self._seen[key] = prefix is not None and authz.manages(self._caller, f"{prefix}:{target}")
        return self._seen[key]


def _check_target(query: CallQuery, visible: Visibility) -> None:
    """A target the caller does not manage answers as one that does not exist."""
    if query.target is None:
        return
    kinds = (query.kind,) if query.kind else tuple(KINDS)
    if not any(visible(kind, query.target) for kind in kinds):
        raise NotFound(f"MCP server or agent {query.target!r} does not exist or you do not have access to it",
                       param="target")


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "key"}


async def remote_calls_work(req: Request) -> Response:
    gw, view, principal = await authenticate(Call.of(req))
    caller = authz.Caller.of(view.policy, principal.principals, principal.user)
    query, keys = _query(req), _group_by(req)
    visible = Visibility(caller)
    _check_target(query, visible)
    q = req.query_params
    page = pages.page_of(req, *(q.get(n) for n in ("since", "until", "kind", "target", "principal",
                                                     "group_by"))) if keys is None else None
    if not caller.is_admin and not caller.manages_any():       # decided without reading storage
        records: list[dict[str, Any]] = []
    else:
        position = page.after if page and page.after and len(page.after) == 2 else None
        after = (str(position[0]), str(position[1])) if position else None
        assert gw.remote.calls is not None
        records = await gw.remote.calls.read(query, after=after,
                                             limit=page.limit if page else MAX_REPORT_RECORDS)
    if page is not None:
        last = records[-1]["key"] if len(records) == page.limit else None
        shown = [_public(r) for r in records if visible(r["kind"], r["target"])]
        return JSONResponse(pages.answer(shown, page.cursor(*last) if last else None))
    assert keys is not None
    truncated = len(records) >= MAX_REPORT_RECORDS
    shown = [r for r in records if visible(r["kind"], r["target"])]
    return JSONResponse({"group_by": list(keys), "all_calls": caller.is_admin, "truncated": truncated,
                         "data": group_calls(shown, keys)})
