"""The offline default reader: answers with the units of its context that answer the
question, no model call.

    reader.py          ExtractiveBackend: the reader itself
    sentence_index.py  the reader's index of a corpus version (its units and vectors)
    late_chunking.py   unit vectors pooled from the chunks' own forward passes
    rescoring.py       a question's shortlisted units scored by their own vectors
    fact_kinds.py      which kind of fact a question asks for, and which a unit carries
    evidence.py        what a unit's similarity score cannot see (tables, qualifiers)
    quantities.py      quantities in questions against the ranges units state
    answer_phrase.py   the shortest phrase that answers, then its support
    one_hop.py         one lookup more when the answer is a role or a name

Part of `kb.backends`: may import `kb.core`, `kb.store`, `kb.search` and
`kb.backends.base` / `kb.backends.prompts`.
"""

from kb.backends.extractive.index_builder import corpus_documents
from kb.backends.extractive.reader import ExtractiveBackend
from kb.backends.extractive.sentence_index import EMBED_STEP, unit_embedding_text

__all__ = ["EMBED_STEP", "ExtractiveBackend", "corpus_documents", "unit_embedding_text"]
