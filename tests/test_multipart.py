"""Strict multipart/form-data reading: one shape accepted, everything else refused naming no caller text."""

from __future__ import annotations

import pytest

from shared.errors import InvalidRequest
from shared.proxy.multipart import boundary_of, parse

B = "xyz"
FIELDS = frozenset({"purpose"})


def body(*parts: bytes, boundary: str = B) -> bytes:
    return b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts) + \
        b"--" + boundary.encode() + b"--\r\n"


PURPOSE = b'Content-Disposition: form-data; name="purpose"\r\n\r\nbatch'
FILE = (b'Content-Disposition: form-data; name="file"; filename="a%22b.jsonl"\r\n'
        b"Content-Type: text/plain\r\n\r\n")


def test_a_well_formed_form_is_read_without_copying_the_file() -> None:
    raw = body(PURPOSE, FILE + b"a--xyz b\r\n--xy")
    form = parse(raw, B, text_fields=FIELDS, file_field="file")
    assert form.fields == {"purpose": "batch"}
    assert form.file is not None and form.file.filename == "a%22b.jsonl"
    assert bytes(form.file.data) == b"a--xyz b\r\n--xy" and form.file.data.obj is raw


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=xyz",
                                          'multipart/form-data; boundary="xyz"',
                                          "Multipart/Form-Data;boundary=xyz"])
def test_boundary_spellings(content_type: str) -> None:
    assert boundary_of(content_type) == B


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/mixed; boundary=xyz",
                                          "multipart/form-data; boundary=xyz; charset=utf-8",
                                          "multipart/form-data; boundary=" + "x" * 71,
                                          "multipart/form-data; boundary=a\tb"])
def test_refused_content_types(content_type: str) -> None:
    with pytest.raises(InvalidRequest):
        boundary_of(content_type)


@pytest.mark.parametrize("raw", [
    body(PURPOSE.replace(b"Content-Disposition", b"Content-Disposition: x\r\nContent-Disposition")),
    body(PURPOSE.replace(b"form-data;", b"form-data;\r\n ")),                       # a folded header
    body(PURPOSE.replace(b'name="purpose"', b'name="purpose"; name="file"')),
    body(PURPOSE.replace(b'name="purpose"', b"name*=UTF-8''purpose")),
    body(PURPOSE.replace(b"Content-Disposition", b"X-Extra: 1\r\nContent-Disposition")),
    body(PURPOSE.replace(b"batch", b"ba\x00tch")),
    body(PURPOSE.replace(b"batch", b"\xff")),
    body(PURPOSE.replace(b"batch", b"b" * 300)),
    body(PURPOSE) + b"trailing",
    body(PURPOSE)[:-4],
    b"\r\n" + body(PURPOSE),
    body(*[PURPOSE] * 17),
])
def test_refused_bodies(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse(raw, B, text_fields=FIELDS, file_field="file")
    assert "ba\x00tch" not in refused.value.public and "b" * 300 not in refused.value.public
