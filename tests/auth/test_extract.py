"""The token of a request: one token, from one place, refused before any decoding when oversized."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers, QueryParams

from shared.auth.extract import extract_token
from shared.errors import InvalidToken, MissingToken

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"


def headers(*pairs: tuple[str, str]) -> Headers:
    return Headers(raw=[(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs])


@pytest.mark.parametrize("pairs", [
    [("Authorization", f"Bearer {JWT}")],
    [("Authorization", f"bearer {JWT}")],
    [("Authorization", f"BEARER {JWT}")],
    [("Authorization", f"  Bearer   {JWT}  ")],
    [("api-key", JWT)],
    [("Api-Key", f" {JWT} ")],
])
def test_accepted(pairs: list[tuple[str, str]]) -> None:
    assert extract_token(headers(*pairs), QueryParams("")) == JWT


def test_missing() -> None:
    with pytest.raises(MissingToken):
        extract_token(headers(("Accept", "*/*")), QueryParams("api-version=1"))


@pytest.mark.parametrize(("pairs", "query", "reason"), [
    ([("Authorization", "Bearer")], "", "Bearer with no token"),
    ([("Authorization", "Bearer    ")], "", "Bearer with no token"),
    ([("Authorization", "")], "", "Authorization header is empty"),
    ([("Authorization", f"Bearer {JWT}"), ("Authorization", f"Bearer {JWT}")], "",
     "more than one Authorization header"),
    ([("Authorization", f"Bearer {JWT}"), ("api-key", JWT)], "",
     "more than one token: both Authorization and api-key headers are present"),
    ([("api-key", JWT), ("api-key", JWT)], "", "more than one api-key header"),
    ([("Authorization", f"Bearer {JWT}")], f"access_token={JWT}",
     "more than one token: a header and the access_token query parameter"),
    ([("api-key", JWT)], "access_token=x", "more than one token: a header and the access_token"),
    ([], f"access_token={JWT}", "tokens in the URL (access_token) are not accepted"),
    ([("Authorization", f"Basic {JWT}")], "", "authorization scheme Basic is not supported: use "
     "'Authorization: Bearer <jwt>'"),
    ([("Authorization", f"Token {JWT}")], "", "authorization scheme Token is not supported"),
    ([("Authorization", "sk-proj-abcdef")], "", "the Authorization header is not 'Bearer <jwt>'"),
    ([("Authorization", f"Bearer {JWT} extra")], "", "malformed Bearer credentials"),
    ([("Authorization", "Bearer a\x7fb")], "", "malformed Bearer credentials"),
    ([("Authorization", "Bearer " + "a" * 9000)], "", "Authorization header is larger than 8 KB"),
    ([("Authorization", "Bearer " + "a" * 65536)], "", "Authorization header is larger than 8 KB"),
    ([("Authorization", "x" * 65536), ("Authorization", "y")], "",
     "Authorization header is larger than 8 KB"),
    ([("api-key", "a" * 9000)], "", "api-key header is larger than 8 KB"),
    ([("api-key", "  ")], "", "api-key header is empty"),
    ([("api-key", "not a token")], "", "api-key header is not a token"),
])
def test_refused(pairs: list[tuple[str, str]], query: str, reason: str) -> None:
    with pytest.raises(InvalidToken) as info:
        extract_token(headers(*pairs), QueryParams(query))
    assert info.value.reason == reason or info.value.reason.startswith(reason)
    assert JWT not in info.value.message


def test_an_oversized_header_is_refused_before_it_is_parsed() -> None:
    """Even a value that is not a Bearer credential at all: size comes first."""
    with pytest.raises(InvalidToken, match="larger than 8 KB"):
        extract_token(headers(("Authorization", "\x01" * 70000)), QueryParams(""))
