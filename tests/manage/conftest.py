"""Helpers for the /manage tests: every page of a list, waiting for a change to reach a process, the CLI.
A caller of /manage (`Api`) is in tests/harness.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.harness import ROOT, Api

ROOT_ADMIN = "user:dev/root"        # in GATEWAY_ADMINS


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
