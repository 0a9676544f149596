"""Where a request for an object held by one account goes: the account's surface, from parsed parts."""

from __future__ import annotations

import pytest

from shared.config.model import Account, AccountAuth
from shared.errors import InvalidRequest
from shared.upstream.scoped import account_url


def account(style: str) -> Account:
    return Account(name="a", kind="azure-openai", endpoint="https://a.openai.azure.com",
                   auth=AccountAuth("managed-identity"), api_style=style, api_version="2024-10-21")


@pytest.mark.parametrize(("style", "path", "query", "url"), [
    ("v1", ("files",), {}, "https://a.openai.azure.com/openai/v1/files"),
    ("v1", ("files",), {"purpose": "batch"}, "https://a.openai.azure.com/openai/v1/files?purpose=batch"),
    ("deployments", ("files", "file-1", "content"), {},
     "https://a.openai.azure.com/openai/files/file-1/content?api-version=2024-10-21"),
    ("deployments", ("files",), {"purpose": "batch", "api-version": "x"},
     "https://a.openai.azure.com/openai/files?purpose=batch&api-version=2024-10-21"),
    ("v1", ("files", "../x?y#z"), {}, "https://a.openai.azure.com/openai/v1/files/..%2Fx%3Fy%23z"),
])
def test_the_url_follows_the_accounts_surface(style: str, path: tuple[str, ...], query: dict[str, str],
                                              url: str) -> None:
    assert account_url(account(style), path, query) == url


def test_a_model_inference_account_holds_no_objects() -> None:
    with pytest.raises(InvalidRequest):
        account_url(account("models"), ("files",), {})
