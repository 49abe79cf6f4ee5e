"""Token counting with tiktoken, offline.

tiktoken downloads its BPE files on first use; llama-index-core ships
`cl100k_base` and `o200k_base`, so we point `TIKTOKEN_CACHE_DIR` at that copy
before the first encoding is built.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from kb.errors import SettingsError

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


def count_tokens(text: str) -> int:
    """Exact cl100k token count of `text` (special-token text counted as plain text)."""
    return len(encoding().encode(text, disallowed_special=()))


def encode(text: str) -> list[int]:
    return encoding().encode(text, disallowed_special=())
