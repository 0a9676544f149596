"""Reads a multipart/form-data body strictly, into the text fields and file parts a form `Spec` allows.

Lenient multipart parsers disagree with each other (a preamble, a second boundary parameter, a
repeated field, a header folded over two lines), and a body that means one thing to the gateway and
another to the upstream is a way around the gateway's checks. So exactly one shape is accepted: one
`boundary` parameter; no preamble and no epilogue but a final CRLF; parts with `Content-Disposition:
form-data; name="..."` (and `filename="..."` on the file part) and at most a `Content-Type`; only the
fields the spec names, each at most once unless it is an array (`include[]`) or a file field allowed
several files; text fields of bounded size (per field) in UTF-8. The file's bytes are a view into the
body, never copied. Errors name the field when it is a known one, never caller text.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from ..errors import InvalidRequest

MAX_PARTS = 16
MAX_PART_HEAD = 2048
MAX_FILENAME = 255
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")
_LINE_BREAKS = dict.fromkeys(map(ord, "\r\n\t"))
_PARAM = re.compile(r';[ \t]*([A-Za-z*]+)="([^"\\\x00-\x1f\x7f]*)"[ \t]*')


@dataclass(frozen=True, slots=True)
class FilePart:
    filename: str
    content_type: str
    data: memoryview
    name: str = "file"      # the form field it was given as


@dataclass(frozen=True, slots=True)
class Form:
    fields: Mapping[str, str]
    file: FilePart | None


@dataclass(frozen=True, slots=True)
class Text:
    """A text field's rules: its size cap in bytes, whether it is an array (given once per item, as
    the openai SDK sends `include[]`), and whether it may hold line breaks and tabs (a prompt)."""

    cap: int = 256
    repeats: bool = False
    multiline: bool = False


@dataclass(frozen=True, slots=True)
class Spec:
    """The fields a form may have: text fields by name, and file fields with how many files each."""

    text: Mapping[str, Text]
    files: Mapping[str, int]
    max_parts: int = MAX_PARTS


@dataclass(frozen=True, slots=True)
class Parts:
    """A form as read: its text fields in the order given (an array's items each as a pair), its
    files in the order given."""

    text: tuple[tuple[str, str], ...]
    files: tuple[FilePart, ...] = field(default=())

    def one(self, name: str) -> str | None:
        return next((value for key, value in self.text if key == name), None)


def boundary_of(content_type: str) -> str:
    """The one boundary of a `multipart/form-data` Content-Type."""
    media, _, rest = content_type.partition(";")
    if media.strip().lower() != "multipart/form-data":
        raise InvalidRequest("the body must be multipart/form-data")
    params = [p.strip() for p in rest.split(";")] if rest else []
    if len(params) != 1 or not params[0].lower().startswith("boundary="):
        raise InvalidRequest("multipart/form-data needs exactly one parameter, boundary")
    value = params[0][len("boundary="):]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not _BOUNDARY.match(value):
        raise InvalidRequest("the multipart boundary is not a valid one (RFC 2046)")
    return value


def parse(body: bytes, boundary: str, *, text_fields: Collection[str], file_field: str,
          max_field_bytes: int = 256) -> Form:
    """The form in `body`: each of `text_fields` at most once, and at most one `file_field` part."""
    parts = read(body, boundary, Spec(text={name: Text(max_field_bytes) for name in text_fields},
                                      files={file_field: 1}))
    return Form(dict(parts.text), parts.files[0] if parts.files else None)


def read(body: bytes, boundary: str, spec: Spec) -> Parts:
    """The form in `body`, each part one `spec` allows, as often as it allows."""
    delimiter = b"\r\n--" + boundary.encode("ascii")
    if not body.startswith(delimiter[2:] + b"\r\n"):
        raise InvalidRequest("the multipart body must start with its boundary")
    view = memoryview(body)
    text: list[tuple[str, str]] = []
    files: list[FilePart] = []
    seen: set[str] = set()
    pos, count = len(delimiter) - 2, 0
    while True:
        if body.startswith(b"--", pos):
            if body[pos + 2:] not in (b"", b"\r\n"):
                raise InvalidRequest("the multipart body has data after its closing boundary")
            break
        if not body.startswith(b"\r\n", pos):
            raise InvalidRequest("a multipart boundary is not followed by a line break")
        end = body.find(delimiter, pos + 2)
        if end < 0:
            raise InvalidRequest("the multipart body is not closed by its boundary")
        count += 1
        if count > spec.max_parts:
            raise InvalidRequest(f"the multipart body has more than {spec.max_parts} parts")
        name, filename, content_type, start = _head(body, pos + 2, end)
        if name in spec.files:
            files.append(_file(name, filename, content_type, view[start:end], files, spec.files[name]))
        elif name in spec.text:
            rules = spec.text[name]
            if name in seen and not rules.repeats:
                raise InvalidRequest(f"the form field '{name}' is given more than once", param=name)
            seen.add(name)
            text.append((name, _text(name, filename, content_type, body[start:end], rules)))
        else:
            raise InvalidRequest("the form has a field the gateway does not accept; it accepts "
                                 + ", ".join([*spec.files, *sorted(spec.text)]))
        pos = end + len(delimiter)
    return Parts(tuple(text), tuple(files))


def _file(name: str, filename: str | None, content_type: str | None, data: memoryview,
          files: list[FilePart], allowed: int) -> FilePart:
    if sum(1 for f in files if f.name == name) >= allowed:
        raise InvalidRequest(f"the form has more than one '{name}'" if allowed == 1 else
                             f"the form has more than {allowed} '{name}'", param=name)
    if filename is None:
        raise InvalidRequest(f"the form field '{name}' must be a file (with a filename)", param=name)
    return FilePart(filename, content_type or "application/octet-stream", data, name)


def _text(name: str, filename: str | None, content_type: str | None, raw: bytes, rules: Text) -> str:
    if filename is not None or content_type not in (None, "text/plain", "text/plain; charset=utf-8"):
        raise InvalidRequest(f"the form field '{name}' must be text, not a file", param=name)
    if len(raw) > rules.cap:
        raise InvalidRequest(f"the form field '{name}' is longer than {rules.cap} bytes", param=name)
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"the form field '{name}' is not UTF-8 text", param=name) from None
    if not (value.translate(_LINE_BREAKS) if rules.multiline else value).isprintable():
        raise InvalidRequest(f"the form field '{name}' holds control characters", param=name)
    return value


def _head(body: bytes, start: int, end: int) -> tuple[str, str | None, str | None, int]:
    """A part's field name, filename and content type, and where its content starts."""
    stop = body.find(b"\r\n\r\n", start, min(end, start + MAX_PART_HEAD))
    if stop < 0:
        raise InvalidRequest("a multipart part's headers are missing or too long")
    try:
        lines = body[start:stop].decode("utf-8").split("\r\n")
    except UnicodeDecodeError:
        raise InvalidRequest("a multipart part's headers are not UTF-8") from None
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        key = name.lower()
        if not colon or not _TOKEN.match(name) or key in headers or \
                key not in ("content-disposition", "content-type"):
            raise InvalidRequest("a multipart part has a header the gateway does not accept (only one "
                                 "Content-Disposition and at most one Content-Type)")
        if not value.strip().isprintable():
            raise InvalidRequest("a multipart part's header holds control characters")
        headers[key] = value.strip()
    if "content-disposition" not in headers:
        raise InvalidRequest("a multipart part has no Content-Disposition")
    name, filename = _disposition(headers["content-disposition"])
    content_type = headers.get("content-type")
    if content_type is not None and not _MEDIA_TYPE.match(content_type.split(";")[0].strip()):
        raise InvalidRequest("a multipart part's Content-Type is not a media type")
    return name, filename, content_type, stop + 4


def _disposition(value: str) -> tuple[str, str | None]:
    """`form-data; name="..."[; filename="..."]`, each parameter once, quoted, nothing else."""
    kind, _, rest = value.partition(";")
    if kind.strip().lower() != "form-data":
        raise InvalidRequest("a multipart part is not form-data")
    params: dict[str, str] = {}
    rest = ";" + rest if rest else ""
    pos = 0
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if match is None or match[1].lower() not in ("name", "filename") or match[1].lower() in params:
            raise InvalidRequest("a multipart part's Content-Disposition is not form-data; name=\"...\" "
                                 "with an optional filename=\"...\"")
        params[match[1].lower()] = match[2]
        pos = match.end()
    if not params.get("name"):
        raise InvalidRequest("a multipart part has no field name")
    filename = params.get("filename")
    if filename is not None and not 0 < len(filename) <= MAX_FILENAME:
        raise InvalidRequest(f"a file name must be 1 to {MAX_FILENAME} characters", param="file")
    return params["name"], filename
