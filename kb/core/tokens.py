"""Token counting with tiktoken, offline.

tiktoken downloads its BPE files on first use; llama-index-core ships
`cl100k_base` and `o200k_base`, so we point `TIKTOKEN_CACHE_DIR` at that copy
before the first encoding is built.

tiktoken's pre-tokenizing regex backtracks once per character of a run of white
space: a run of a few hundred thousand spaces before a word overflows its stack
and panics (a `BaseException`, not even an `Exception`). Every encode here goes
through `safe_pieces`, which cuts such runs into bounded pieces first; text
without a long run is encoded in one call, exactly as before.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from kb.core.errors import SettingsError

if TYPE_CHECKING:
    import tiktoken

ENCODING_NAME = "cl100k_base"


def _bundled_cache_dir() -> Path:
    spec = importlib.util.find_spec("llama_index.core")
    if spec is None or not spec.submodule_search_locations:
        raise SettingsError(
            "llama-index-core is not installed; it carries the offline tiktoken files. "
            "Run scripts/setup.sh."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "_static" / "tiktoken_cache"


@lru_cache(maxsize=2)
def encoding(name: str = ENCODING_NAME) -> tiktoken.Encoding:
    """The tiktoken encoding `name`, loaded from the bundled offline cache."""
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(_bundled_cache_dir()))
    import tiktoken

    return tiktoken.get_encoding(name)


# Far below the run length that overflows tiktoken (between 200k and 1M characters).
MAX_WHITESPACE_RUN = 4_096
_LONG_RUN = re.compile(rf"\s{{{MAX_WHITESPACE_RUN + 1},}}")


def safe_pieces(text: str) -> Iterator[str]:
    """`text` cut inside each white-space run longer than MAX_WHITESPACE_RUN, so that
    no piece holds a longer run; the pieces join back to `text`."""
    start = 0
    for run in _LONG_RUN.finditer(text):
        cut = run.start() + MAX_WHITESPACE_RUN
        while cut < run.end():
            yield text[start:cut]
            start = cut
            cut += MAX_WHITESPACE_RUN
    yield text[start:]


def encode(text: str) -> list[int]:
    """cl100k tokens of `text`, special-token text encoded as plain text."""
    enc = encoding()
    if len(text) <= MAX_WHITESPACE_RUN:  # the common case: no run can be too long
        return enc.encode_ordinary(text)
    tokens: list[int] = []
    for piece in safe_pieces(text):
        tokens.extend(enc.encode_ordinary(piece))
    return tokens


def count_tokens(text: str) -> int:
    """cl100k token count of `text` (exact unless it holds a very long white-space run)."""
    return len(encode(text))
