"""The tokenizers the prompt estimate counts with, built from the BPE files shipped in `bpe/`.

tiktoken would download its rank files at first use; the gateway never does. The ranks are read from the
package, checked against tiktoken's published sha256, and an `Encoding` is built from them directly, once
per process and only when first needed (building o200k takes a few hundred milliseconds).

Which encoding a model uses is read from its names (the gateway model's name and its targets' deployment
names): cl100k for GPT-3.5, GPT-4 (not 4o, 4.1 or 4.5), the ada, babbage and davinci models and the
text-embedding models; o200k for everything else (GPT-4o, 4.1, 4.5, 5, the o-series), which is also the
default for names that say nothing.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from tiktoken import Encoding

O200K = "o200k_base"
CL100K = "cl100k_base"


@dataclass(frozen=True, slots=True)
class Spec:
    sha256: str                    # of the decompressed rank file, as tiktoken expects it
    pat_str: str
    special_tokens: dict[str, int]


# The split patterns and special tokens are tiktoken's own (tiktoken_ext/openai_public.py); a test
# checks that they still are.
_O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
_CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+"""
                   r"""| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")

SPECS: dict[str, Spec] = {
    O200K: Spec("446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d", _O200K_PATTERN,
                {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}),
    CL100K: Spec("223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7", _CL100K_PATTERN,
                 {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                  "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}),
}

_CL100K_NAMES = re.compile(r"^(?:gpt-?35|gpt-3\.5|gpt-?4(?![o.\d])|text-embedding-|ada|babbage|davinci)")
"""Model names counted with cl100k (matched on the lower-cased name's start)."""


class BadRanks(RuntimeError):
    """A shipped rank file does not hash to what tiktoken expects."""


@functools.lru_cache(maxsize=1024)
def _encoding_names(names: tuple[str, ...]) -> tuple[str, ...]:
    found = {CL100K if _CL100K_NAMES.match(name.strip().lower()) else O200K for name in names if name}
    return tuple(sorted(found, reverse=True)) or (O200K,)


def encoding_names(names: Iterable[str]) -> tuple[str, ...]:
    """The encodings to count with for a model known by these names: one, or both when its names
    disagree (then the larger count is used, so a wrong guess never under-counts)."""
    return _encoding_names(tuple(names))


def ranks(name: str) -> dict[bytes, int]:
    """The mergeable ranks of a shipped encoding, checked against tiktoken's hash."""
    return read_ranks(resources.files(__package__) / "bpe" / f"{name}.tiktoken.gz", SPECS[name].sha256)


def read_ranks(path: Traversable, sha256: str) -> dict[bytes, int]:
    raw = gzip.decompress(path.read_bytes())
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise BadRanks(f"{path.name} does not hash to what tiktoken expects")
    out: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            out[base64.b64decode(token)] = int(rank)
    return out


_lock = threading.Lock()
_cache: dict[str, Encoding] = {}


def encoding(name: str) -> Encoding:
    """The named encoding, built once per process (threads racing for it build it once)."""
    found = _cache.get(name)
    if found is not None:
        return found
    with _lock:
        if name not in _cache:
            import tiktoken

            spec = SPECS[name]
            _cache[name] = tiktoken.Encoding(name, pat_str=spec.pat_str, mergeable_ranks=ranks(name),
                                             special_tokens=dict(spec.special_tokens))
        return _cache[name]
