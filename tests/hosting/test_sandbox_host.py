"""`make run` serves function_app.py as Azure does: Core Tools when installed, else the host stand-in;
SANDBOX_HOST=uvicorn asks for `python -m shared serve` instead."""

from __future__ import annotations

import sys

import pytest

from sandbox.options import OptionError, options
from sandbox.run import gateway_command


@pytest.mark.parametrize(("host", "func", "command"), [
    ("functions", None, [sys.executable, "-m", "funchost", "--app"]),
    ("functions", "/usr/bin/func", ["/usr/bin/func", "start", "--port", "7071"]),
    ("uvicorn", None, [sys.executable, "-m", "shared", "serve", "--port", "7071"]),
    ("uvicorn", "/usr/bin/func", [sys.executable, "-m", "shared", "serve", "--port", "7071"]),
])
def test_what_serves_the_gateway(host: str, func: str | None, command: list[str]) -> None:
    chosen = gateway_command(host, 7071, func)
    assert chosen[:len(command)] == command and chosen[-2:] == ["--port", "7071"]


@pytest.mark.parametrize(("value", "host"), [(None, "functions"), ("", "functions"), ("uvicorn", "uvicorn"),
                                             (" Functions ", "functions")])
def test_sandbox_host(value: str | None, host: str) -> None:
    assert options({} if value is None else {"SANDBOX_HOST": value}).host == host


def test_an_unknown_sandbox_host_names_its_setting() -> None:
    with pytest.raises(OptionError, match="SANDBOX_HOST must be one of functions, uvicorn, got 'iis'"):
        options({"SANDBOX_HOST": "iis"})
