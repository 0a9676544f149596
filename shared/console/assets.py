"""The console's files, read once at import from static/: an allowlist of name -> bytes, type and ETag.

Assets are served under a directory named by the hash of all of them, so a browser may keep them for a
year and a new release is a new URL; index.html is the one file served at a stable URL (uncached), its
references to assets rewritten here to point into that hashed directory. Nothing outside this table
is ever read from disk, so no request path can reach another file or a directory listing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
INDEX = "index.html"
# A reference in index.html to a sibling file: src="./app.js", href="./app.css".
_REFERENCE = re.compile(r'(src|href)="\./([a-z0-9][a-z0-9-]*\.[a-z]+)"')


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _asset(body: bytes, name: str) -> Asset:
    digest = hashlib.sha256(body).hexdigest()[:32]
    return Asset(body, CONTENT_TYPES[Path(name).suffix], f'"{digest}"')


def _read(directory: Path) -> dict[str, bytes]:
    """Every regular file of a known type directly in `directory` (no subdirectories, no dot files)."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.suffix in CONTENT_TYPES}


def _release(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()[:20]


def _index(html: bytes, release: str, assets: dict[str, Asset]) -> bytes:
    """index.html with each reference to an asset moved into the release's directory; a reference to a
    file that is not an asset is a packaging mistake, caught at import rather than as a browser 404."""

    def moved(match: re.Match[str]) -> str:
        attribute, name = match.groups()
        if name not in assets:
            raise RuntimeError(f"console index.html refers to {name!r}, which is not a console asset")
        return f'{attribute}="./a/{release}/{name}"'

    return _REFERENCE.sub(moved, html.decode()).encode()


@dataclass(frozen=True, slots=True)
class Bundle:
    release: str                # the hash naming the assets' directory
    index: Asset
    assets: dict[str, Asset]    # file name -> asset, index.html excluded


def load(directory: Path = STATIC) -> Bundle:
    files = _read(directory)
    html = files.pop(INDEX)
    release = _release(files)
    assets = {name: _asset(body, name) for name, body in files.items()}
    return Bundle(release, _asset(_index(html, release, assets), INDEX), assets)


BUNDLE = load()
