"""The console's files over plain HTTP: the security headers on every answer, the page uncached and its
assets cached for a year under the release's hash, and nothing but the allowlisted files (no listing,
no traversal, no other file, no stale hash)."""

from __future__ import annotations

import re

import pytest
import requests

from shared.console.assets import BUNDLE
from tests.console.browser import off_thread
from tests.harness import World, raw_request

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
RELEASE = BUNDLE.release
YEAR = "public, max-age=31536000, immutable"


def get(world: World, path: str) -> requests.Response:
    return requests.get(world.url + path, timeout=10, allow_redirects=False)


def assert_secured(answer: requests.Response) -> None:
    assert answer.headers["content-security-policy"] == CSP
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-request-id"]


@pytest.mark.parametrize(("path", "status", "content_type", "cache"), [
    ("/console/", 200, "text/html; charset=utf-8", "no-cache"),
    ("/console/index.html", 200, "text/html; charset=utf-8", "no-cache"),
    (f"/console/a/{RELEASE}/app.js", 200, "text/javascript; charset=utf-8", YEAR),
    (f"/console/a/{RELEASE}/app.css", 200, "text/css; charset=utf-8", YEAR),
    (f"/console/a/{RELEASE}/icon.svg", 200, "image/svg+xml", YEAR),
    ("/console", 308, None, "no-cache"),
    (f"/console/a/{'0' * len(RELEASE)}/app.js", 404, "application/json", None),    # a stale release
    (f"/console/a/{RELEASE}/index.html", 404, "application/json", None),           # the page is not an asset
    (f"/console/a/{RELEASE}/nope.js", 404, "application/json", None),
    (f"/console/a/{RELEASE}", 404, "application/json", None),                       # no listing
    ("/console/a", 404, "application/json", None),
    ("/console/app.js", 404, "application/json", None),                             # assets only by release
    ("/console/assets.py", 404, "application/json", None),
    ("/console/static", 404, "application/json", None),
    ("/console/static/app.js", 404, "application/json", None),
])
def test_each_answer(world: World, path: str, status: int, content_type: str | None,
                     cache: str | None) -> None:
    answer = get(world, path)
    assert answer.status_code == status, answer.text
    assert_secured(answer)
    if content_type:
        assert answer.headers["content-type"] == content_type
    if cache:
        assert answer.headers["cache-control"] == cache
    if status == 404:
        assert answer.json()["error"]["code"] == "not_found"


def test_the_redirect_is_relative_so_it_works_behind_a_prefix(world: World) -> None:
    assert get(world, "/console").headers["location"] == "console/"


def test_the_page_refers_to_its_assets_by_relative_hashed_urls(world: World) -> None:
    page = get(world, "/console/").text
    references = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert f"./a/{RELEASE}/app.js" in references and f"./a/{RELEASE}/app.css" in references
    assert all(ref.startswith(("./a/", "#")) for ref in references), references
    for ref in references:
        if ref.startswith("./a/"):
            assert get(world, "/console/" + ref.removeprefix("./")).status_code == 200


def test_an_asset_is_the_file_itself(world: World) -> None:
    answer = get(world, f"/console/a/{RELEASE}/api.js")
    assert answer.content == BUNDLE.assets["api.js"].body
    assert answer.headers["etag"] == BUNDLE.assets["api.js"].etag


@pytest.mark.parametrize("path", [
    b"/console/a/%RELEASE%/../../../function_app.py",
    b"/console/../function_app.py",
    b"/console/a/%RELEASE%/%2e%2e/assets.py",
    b"/console/a/%RELEASE%/..%2Fassets.py",
    b"/console/a/%RELEASE%/..%5cassets.py",
    b"/console//a/%RELEASE%/app.js",
    b"/console/./index.html",
])
def test_traversal_is_refused(world: World, path: bytes) -> None:
    raw = path.replace(b"%RELEASE%", RELEASE.encode())
    request = b"GET " + raw + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = off_thread(lambda: raw_request(world.port, request))
    assert answer.status_code in (400, 404)
    assert b"import" not in answer.body and b"GATEWAY_" not in answer.body


def test_a_path_that_only_starts_like_the_console_is_not_the_console(world: World) -> None:
    assert get(world, "/consolex").status_code == 404


def test_other_methods_are_refused(world: World) -> None:
    answer = requests.post(world.url + "/console/", timeout=10)
    assert answer.status_code == 405
