"""The foundation every other package stands on; it imports nothing else of `kb`.

errors.py    the error tree (KBError and its kinds)
settings.py  Settings and load_settings: every `KB_*` variable, checked once
models.py    the typed values passed between layers (documents, chunks, answers)
tokens.py    token counting with the bundled tiktoken encoding
text.py      sentence spans, words and stems shared by chunking and the reader
tables.py    table rows read with their header, in any markup
"""

from kb.core.errors import (
    BackendError,
    CorpusDamagedError,
    IngestBusyError,
    InvalidRequestError,
    KBError,
    SettingsError,
    UserError,
)
from kb.core.models import Document
from kb.core.settings import (
    DEFAULT_KB,
    KB_NAME_RULE,
    MODES,
    TOP_K_MAX,
    TOP_K_MIN,
    EmbedBackend,
    EmbedPrecision,
    Mode,
    Settings,
    check_top_k,
    load_settings,
)
from kb.core.text import content_words, reading_units, sentence_spans
from kb.core.tokens import count_tokens, encoding

__all__ = [
    "DEFAULT_KB",
    "KB_NAME_RULE",
    "MODES",
    "TOP_K_MAX",
    "TOP_K_MIN",
    "BackendError",
    "CorpusDamagedError",
    "Document",
    "EmbedBackend",
    "EmbedPrecision",
    "IngestBusyError",
    "InvalidRequestError",
    "KBError",
    "Mode",
    "Settings",
    "SettingsError",
    "UserError",
    "check_top_k",
    "content_words",
    "count_tokens",
    "encoding",
    "load_settings",
    "reading_units",
    "sentence_spans",
]
