"""Writes the multipart form one upstream target gets, from a form the gateway has read strictly.

The caller's framing never reaches the upstream: the boundary is the gateway's own (random, so no
value can hold it), each part carries only its Content-Disposition and, for a file, its media type,
and the files' bytes are views into the one copy of the caller's body the gateway holds (never
joined into a second copy).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence

from ..upstream.outbound import Body
from .multipart import FilePart


def form(text: Sequence[tuple[str, str]], files: Sequence[FilePart]) -> Body:
    """The form of `text` fields (in order, an array's items each once) and then `files`."""
    boundary = os.urandom(16).hex()
    head = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
                   for name, value in text)
    pieces: list[bytes | memoryview] = []
    for file in files:
        media = file.content_type.split(";", 1)[0].strip()
        head += (f'--{boundary}\r\nContent-Disposition: form-data; name="{file.name}"; '
                 f'filename="{file.filename}"\r\nContent-Type: {media}\r\n\r\n')
        pieces += [head.encode(), file.data]
        head = "\r\n"
    pieces.append(f"{head}--{boundary}--\r\n".encode())
    length = sum(piece.nbytes if isinstance(piece, memoryview) else len(piece) for piece in pieces)

    async def chunks() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece     # type: ignore[misc]  # aiohttp writes any bytes-like chunk

    return Body(chunks(), length, f"multipart/form-data; boundary={boundary}")
