"""Strict multipart/form-data reading: one shape accepted, everything else refused naming no caller text."""

from __future__ import annotations

import pytest

from shared.errors import InvalidRequest
from shared.proxy.multipart import Spec, Text, boundary_of, parse, read

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


SPEC = Spec(text={"prompt": Text(12, multiline=True), "include[]": Text(repeats=True), "n": Text()},
            files={"image[]": 3, "mask": 1}, max_parts=6)


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'Content-Disposition: form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return disposition.encode() + b"\r\n\r\n" + value


def test_a_form_with_several_files_and_an_array() -> None:
    raw = body(part("image[]", b"one", "a.png"), part("include[]", b"logprobs"), part("prompt", b"a\r\nb\tc"),
               part("image[]", b"two\r\n", "b.png"), part("include[]", b"more"))
    form = read(raw, B, SPEC)
    assert form.text == (("include[]", "logprobs"), ("prompt", "a\r\nb\tc"), ("include[]", "more"))
    assert form.one("prompt") == "a\r\nb\tc" and form.one("n") is None
    assert [(f.name, f.filename, bytes(f.data)) for f in form.files] == [("image[]", "a.png", b"one"),
                                                                         ("image[]", "b.png", b"two\r\n")]
    assert all(f.data.obj is raw for f in form.files)


@pytest.mark.parametrize(("raw", "param"), [
    (body(*[part("image[]", b"x", "a.png")] * 4), "image[]"),             # more files than allowed
    (body(part("mask", b"x", "m.png"), part("mask", b"x", "m.png")), "mask"),
    (body(part("mask", b"x")), "mask"),                                   # a file field without a file
    (body(part("n", b"1"), part("n", b"2")), "n"),                        # not an array: once only
    (body(part("prompt", b"x" * 13)), "prompt"),                          # over its own cap
    (body(part("n", b"1\n2")), "n"),                                     # line breaks: prompts only
    (body(part("prompt", b"a\x00b")), "prompt"),                          # other control characters never
    (body(part("include[]", b"x", "x.txt")), "include[]"),               # a text field given as a file
    (body(*[part("include[]", b"x")] * 7), None),                         # more parts than the spec's
    (body(part("colour", b"red")), None),                                 # unknown: not echoed
])
def test_refused_forms(raw: bytes, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as refused:
        read(raw, B, SPEC)
    assert refused.value.param == param and "colour" not in refused.value.public
