"""`GET /manage/usage?since=&until=&group_by=`: requests, tokens and cost, as `python -m shared usage`.

A gateway admin sees everyone's usage; any other caller sees only their own (the rows charged to their
user principal), however they group it, so a user can follow their own spend without an admin.
`since` and `until` are ISO dates or times, or durations back from now (`7d`), and pick whole UTC days
(both included; default: every day kept); `group_by` is a comma-separated list of `day`, `user`,
`identity` and `model` (default `day,user,identity,model`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..callers import authenticate
from ..config.audit import parse_since
from ..errors import InvalidRequest
from ..http import Call
from ..upstream.usage import GROUPS, group
from . import authz

DEFAULT_GROUP_BY = ("day", "principal", "identity", "model")
_PARAMS = frozenset({"since", "until", "group_by"})


def _day(req: Request, name: str) -> str | None:
    text = req.query_params.get(name)
    if text is None:
        return None
    try:
        return datetime.fromtimestamp(parse_since(text), UTC).date().isoformat()
    except (ValueError, OverflowError, OSError):     # not a time, or one no calendar holds
        raise InvalidRequest(f"{name}: use an ISO date or time, or a duration like 30m, 12h, 7d",
                             param=name) from None


def _group_by(req: Request) -> tuple[str, ...]:
    text = req.query_params.get("group_by")
    if text is None:
        return DEFAULT_GROUP_BY
    out: list[str] = []
    for name in (part.strip().lower() for part in text.split(",")):
        if name not in GROUPS:
            raise InvalidRequest("group_by: a comma-separated list of day, user, identity, model",
                                 param="group_by")
        if GROUPS[name] not in out:
            out.append(GROUPS[name])
    return tuple(out)


async def usage_work(req: Request) -> Response:
    gw, view, principal = await authenticate(Call.of(req))
    caller = authz.Caller.of(view.policy, principal.principals, principal.user)
    unknown = sorted(set(req.query_params) - _PARAMS)
    if unknown:
        raise InvalidRequest(f"{unknown[0]}: unknown parameter", param=unknown[0])
    since, until, keys = _day(req, "since"), _day(req, "until"), _group_by(req)
    rows = await gw.usage.read(since, until)
    if not caller.is_admin:
        rows = [r for r in rows if r["principal"] == caller.name]
    return JSONResponse({"since": since, "until": until, "group_by": list(keys),
                         "all_users": caller.is_admin, "data": group(rows, keys)})
