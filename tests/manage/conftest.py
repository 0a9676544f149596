"""A running gateway for the /manage tests, callers with real tokens from the dev IdP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import requests

from sandbox.idp import DevIdentityProvider
from tests.conftest import ROOT

ROOT_ADMIN = "user:dev/root"        # in GATEWAY_ADMINS


class Api:
    """/manage as a user sees it: one token, plain HTTP."""

    def __init__(self, url: str, idp: DevIdentityProvider, sub: str, **claims: Any) -> None:
        self.url = url
        token = idp.mint(sub, claims=claims or None, audience="api://ai-gateway")
        self.client = requests.Session()
        self.client.headers["Authorization"] = f"Bearer {token}"

    def __getattr__(self, method: str) -> Callable[..., requests.Response]:
        if method not in ("get", "put", "delete", "post"):
            raise AttributeError(method)

        def call(path: str, body: Any = None, headers: dict[str, str] | None = None,
                 params: dict[str, str] | None = None) -> requests.Response:
            return self.client.request(method.upper(), f"{self.url}/manage/{path}", json=body,
                                       headers=headers, params=params, timeout=30)

        return call


def every_item(api: Api, path: str, **params: str) -> list[dict[str, Any]]:
    """A whole /manage list, page after page (a page may hold fewer items than its limit)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        answer = api.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        items += answer.json()["items"]
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError(f"{path}: more than 1000 pages")


def wait_until(condition: Callable[[], bool], seconds: float = 20) -> bool:
    """Poll `condition` (a change reaching a process) until it holds or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)
