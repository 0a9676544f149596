"""The escaping every gateway log handler applies: messages, structured extras and tracebacks."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from shared import logsafe


@pytest.mark.parametrize(("raw", "shown"), [
    ("plain text, unchanged", "plain text, unchanged"),
    ("a\r\nb", "a\\r\\nb"),
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("nul\x00 bell\x07 tab\t del\x7f", "nul\\x00 bell\\x07 tab\\t del\\x7f"),
    ("c1 csi\x9b2J nel\x85", "c1 csi\\x9b2J nel\\x85"),
    ("line\u2028separator\u2029", "line\\u2028separator\\u2029"),
    ("bidi \u202egnp.exe\u2066", "bidi \\u202egnp.exe\\u2066"),
    ("caf\u00e9 \u6f22\u5b57 \U0001f600", "caf\u00e9 \u6f22\u5b57 \U0001f600"),   # printable text stays
])
def test_escape(raw: str, shown: str) -> None:
    assert logsafe.escape(raw) == shown


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logsafe.SafeFormatter("%(levelname)s %(message)s principal=%(principal)s"))
    logsafe.protect(handler)
    logger = logging.getLogger("gateway.test-logsafe")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_attack_log_injection_through_args_and_extras(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    sub = "eve\r\nINFO forged principal=admin\x1b[2J"
    logger.info("GET %s model=%r", "/v1/x\r\nINFO forged", "m\n", extra={"principal": sub, "count": 3})
    (line,) = stream.getvalue().splitlines()
    assert line == ("INFO GET /v1/x\\r\\nINFO forged model='m\\n' "
                    "principal=eve\\r\\nINFO forged principal=admin\\x1b[2J")


def test_a_message_with_percent_signs_is_formatted_once(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("path %s", "/a%20b%s", extra={"principal": "-"})
    assert stream.getvalue() == "INFO path /a%20b%s principal=-\n"


def test_attack_log_injection_through_an_exception_message(
        captured: tuple[logging.Logger, io.StringIO]) -> None:
    """A traceback keeps its lines, indented, so only a record starts a line; other controls are escaped."""
    logger, stream = captured
    try:
        raise ValueError("bad value\nINFO forged line\x1b[31m")
    except ValueError:
        logger.exception("failed", extra={"principal": "-"})
    first, *rest = stream.getvalue().rstrip("\n").split("\n")
    assert first == "ERROR failed principal=-"
    assert rest and all(line.startswith("    ") for line in rest)
    assert "\x1b" not in stream.getvalue() and "    INFO forged line\\x1b[31m" in rest


def test_install_protects_the_handlers_records_reach() -> None:
    root, gateway = logging.getLogger(), logging.getLogger("gateway")
    added = logging.StreamHandler(io.StringIO())
    gateway.addHandler(added)
    try:
        logsafe.install()
        logsafe.install()
        assert sum(isinstance(f, logsafe.EscapeControls) for f in added.filters) == 1
        assert all(any(isinstance(f, logsafe.EscapeControls) for f in h.filters) for h in root.handlers)
    finally:
        gateway.removeHandler(added)


def test_uvicorn_access_records_keep_their_args_escaped() -> None:
    """uvicorn's access formatter unpacks the record's args: the Functions worker's HTTP server logs
    each request through it, so clearing them failed every line (a traceback per request)."""
    from uvicorn.logging import AccessFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s',
                                         use_colors=False))
    logsafe.protect(handler)
    logger = logging.getLogger("uvicorn.access")
    logger.addHandler(handler)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(logger, "level", logging.INFO)
            patch.setattr(logging, "raiseExceptions", True)
            patch.setattr(logging.Handler, "handleError", lambda self, record: pytest.fail("logging error"))
            logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/a\r\nfake 200", "1.1", 404)
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == '127.0.0.1:5 - "GET /a\\r\\nfake 200 HTTP/1.1" 404 Not Found\n'
