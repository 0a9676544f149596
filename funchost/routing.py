"""Which HTTP function a request reaches, by the functions' route templates, as the Functions host
routes them (ASP.NET Core route templates).

A template is segments separated by "/": a literal (matched case-insensitively), `{name}` (one
segment), `{name?}` (an optional last segment) or `{*name}` (the rest of the path, possibly empty).
When several routes match, the most specific wins: segment by segment, a literal beats a parameter,
which beats an optional parameter, which beats a catch-all; then the template's text decides, so the
choice never depends on registration order. Routes under `admin` are the host's own.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Kind(IntEnum):
    """A segment's kind; the value is its rank (lower is more specific)."""

    LITERAL = 1
    PARAMETER = 3
    OPTIONAL = 4
    CATCH_ALL = 5


@dataclass(frozen=True, slots=True)
class Segment:
    kind: Kind
    text: str           # the literal, or the parameter's name


@dataclass(frozen=True, slots=True)
class Route:
    function: str
    template: str
    methods: frozenset[str]
    segments: tuple[Segment, ...]

    @property
    def precedence(self) -> tuple[tuple[int, ...], str]:
        return tuple(s.kind for s in self.segments), self.template.lower()


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    params: dict[str, str]


def _segment(text: str, template: str) -> Segment:
    if not (text.startswith("{") and text.endswith("}")):
        if "{" in text or "}" in text or not text:
            raise ValueError(f"route {template!r}: unsupported segment {text!r}")
        return Segment(Kind.LITERAL, text)
    inner = text[1:-1]
    kind = Kind.PARAMETER
    if inner.startswith("*"):
        kind, inner = Kind.CATCH_ALL, inner.lstrip("*")
    elif inner.endswith("?"):
        kind, inner = Kind.OPTIONAL, inner[:-1]
    if not NAME.fullmatch(inner):
        raise ValueError(f"route {template!r}: unsupported parameter {text!r} (no constraints or defaults)")
    return Segment(kind, inner)


def parse(function: str, template: str, methods: Iterable[str], prefix: str = "") -> Route:
    """The route of `template` under the host's route prefix; ValueError if the template is malformed."""
    full = "/".join(part.strip("/") for part in (prefix, template) if part.strip("/"))
    segments = tuple(_segment(text, full) for text in full.split("/")) if full else ()
    for index, seg in enumerate(segments):
        if seg.kind in (Kind.OPTIONAL, Kind.CATCH_ALL) and index != len(segments) - 1:
            raise ValueError(f"route {full!r}: {seg.text!r} must be the last segment")
    return Route(function, full, frozenset(m.upper() for m in methods), segments)


def _bind(route: Route, parts: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for index, seg in enumerate(route.segments):
        rest = parts[index:]
        if seg.kind is Kind.CATCH_ALL:
            if rest:
                params[seg.text] = "/".join(rest)
            return params
        if not rest:
            return params if seg.kind is Kind.OPTIONAL else None
        if seg.kind is Kind.LITERAL and rest[0].lower() != seg.text.lower():
            return None
        if seg.kind is not Kind.LITERAL:
            if not rest[0]:
                return None
            params[seg.text] = rest[0]
    return params if len(parts) == len(route.segments) else None


def split(path: str) -> list[str]:
    """A request path's decoded segments ("/" alone, or a trailing "/", adds none)."""
    trimmed = path.removeprefix("/").removesuffix("/")
    return [urllib.parse.unquote(part) for part in trimmed.split("/")] if trimmed else []


class RouteTable:
    """The HTTP functions' routes, most specific first."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = sorted(routes, key=lambda r: r.precedence)

    def find(self, method: str, path: str) -> Match | None:
        """The route `method` and `path` reach, with its parameters; None for the host's 404."""
        parts = split(path)
        if parts and parts[0].lower() == "admin":
            return None
        for route in self.routes:
            if method.upper() in route.methods:
                params = _bind(route, parts)
                if params is not None:
                    return Match(route, params)
        return None
