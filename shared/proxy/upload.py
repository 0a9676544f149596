"""Uploading a file: into the account of a gateway model the caller may use, recorded as theirs before
its id reaches them.

Files belong to an account, not a model, but callers are granted models; so the caller names a model
(form field `model`, or query parameter `model`), and the file goes to the account of that model's
first usable target. The form is read strictly (`multipart`) and a new one is written for the
upstream from what was read: the caller's framing never reaches it, `model` is not sent, and the
file's bytes are sent from the one copy of the body the gateway holds. If the record cannot be
written, the file is deleted upstream and the caller gets the error, never an id nobody owns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from starlette.responses import Response

from ..callers import authenticate
from ..errors import InvalidRequest, ModelNotFound
from ..objects.store import Owned
from ..upstream.response import to_starlette
from ..upstream.scoped import AccountRequest, holds_objects, send
from . import form_writer, multipart, recording
from .files import FILE_ID, purpose_of

if TYPE_CHECKING:
    from ..config.model import Account, Model
    from ..http import Call

log = logging.getLogger("gateway.proxy.upload")

FORWARDED = ("purpose", "expires_after[anchor]", "expires_after[seconds]")
"""The text fields sent upstream, in this order; `model` is the gateway's alone."""
CREATION = recording.Creation("file", FILE_ID, ("files",))
TEXT_FIELDS = frozenset({*FORWARDED, "model"})
EXPIRES_SECONDS = (3600, 2_592_000)     # one hour to thirty days, as Azure and OpenAI accept


async def create(call: Call) -> Response:
    gw, view, principal = await authenticate(call)
    boundary = multipart.boundary_of(call.request.headers.get("content-type", ""))
    raw = await call.body(gw.settings.max_body_bytes)
    form = multipart.parse(raw, boundary, text_fields=TEXT_FIELDS, file_field="file")
    fields = _checked(form)
    model_name = _model_name(form.fields, call.request.query_params.getlist("model"))
    call.model = model_name
    model = view.models.get(model_name)
    if model is None or not view.policy.allows(principal.principals, f"model:{model_name}", "viewer"):
        raise ModelNotFound(model_name)
    account = account_of(model, view.accounts)
    call.account = account.name
    file = form.file
    assert file is not None     # _checked
    body = form_writer.form(list(fields.items()), [file])
    answer = await send(gw.forwarder.transport, account, AccountRequest(
        "POST", ("files",), call.request_id, headers=call.request.headers, body=body.chunks,
        content_type=body.content_type, extra={"Content-Length": str(body.length)}))
    if not 200 <= answer.status < 300:
        return to_starlette(answer)
    file_id, doc = await recording.created_id(gw, account, answer.body, CREATION, call.request_id)
    await recording.record(gw, account, Owned(
        kind="file", object_id=file_id, account=account.name, owner=principal.user, model=model_name,
        created=time.time(), expires=recording.expires_of(doc)), CREATION, call.request_id)
    return to_starlette(answer)


def _checked(form: multipart.Form) -> dict[str, str]:
    """The fields to forward, once each is known to be one Azure takes."""
    if form.file is None:
        raise InvalidRequest("the form has no 'file'", param="file")
    fields = {name: form.fields[name] for name in FORWARDED if name in form.fields}
    if "purpose" not in fields:
        raise InvalidRequest("the form has no 'purpose'", param="purpose")
    purpose_of(fields["purpose"])
    anchor, seconds = fields.get("expires_after[anchor]"), fields.get("expires_after[seconds]")
    if (anchor is None) != (seconds is None):
        raise InvalidRequest("expires_after needs both anchor and seconds", param="expires_after")
    if anchor is not None and anchor != "created_at":
        raise InvalidRequest("expires_after[anchor] must be created_at", param="expires_after[anchor]")
    if seconds is not None and not (seconds.isascii() and seconds.isdigit()
                                    and EXPIRES_SECONDS[0] <= int(seconds) <= EXPIRES_SECONDS[1]):
        raise InvalidRequest(f"expires_after[seconds] must be a whole number from {EXPIRES_SECONDS[0]} to "
                             f"{EXPIRES_SECONDS[1]}", param="expires_after[seconds]")
    return fields


def _model_name(fields: Mapping[str, str], query: list[str]) -> str:
    given = [*query, *([fields["model"]] if "model" in fields else [])]
    if not given or not given[0]:
        raise InvalidRequest("name the gateway model whose account holds the file: the form field "
                             "'model' or the query parameter 'model'", param="model")
    if len(given) > 1:
        raise InvalidRequest("give 'model' once: as a form field or a query parameter", param="model")
    return given[0]


def account_of(model: Model, accounts: Mapping[str, Account]) -> Account:
    """The model's first target whose account is usable and stores files."""
    for target in model.targets:
        account = accounts.get(target.account)
        if account is not None and holds_objects(account):
            return account
    raise InvalidRequest(f"model {model.name!r} has no usable account that stores files", param="model")
