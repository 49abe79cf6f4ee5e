"""The units a question shortlists, scored with their own vectors when the index holds
pooled ones.

By default an ingest pools each reading unit's vector from its chunk's forward pass
(`late_chunking`): the chunks are embedded and the units cost nothing more. A pooled
vector carries its chunk's context, so alone it ranks a passage's sentences less
sharply (4-15 points less reader accuracy on five of six dev sets). Here the reader
scores every unit with the pooled vectors first, then embeds the best `SHORTLIST` of
them as texts of their own (the text the ingest would have embedded, checked against
the unit's hash in the index) and scores those again. A pooled unit outside the
shortlist keeps its pooled similarity, moved by the mean gap between pooled and own
similarities on the shortlist and never above the lowest own one: no unit's
similarity outranks one the shortlist measured unless it was measured too. With a
shortlist of 32 every dev set's reader accuracy equals that of an index of own vectors
(docs/benchmarks.md, "Pooled unit vectors and the re-scored shortlist").

The own vectors are remembered by unit hash (`CACHED_UNITS` of them) for the reader's
lifetime (one per knowledge base a process opens), so a unit is embedded once however
many questions shortlist it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from kb.backends.extractive.reading import Reading
from kb.backends.extractive.sentence_index import embedding_text, hash64
from kb.search.embedding import Embedder

SHORTLIST = 32  # units re-scored per question: 24 held every dev set, 16 lost one
CACHED_UNITS = 20_000  # own vectors kept per reader (float32: ~30 MB)


class OwnUnitVectors:
    """Units' own vectors, embedded when a question first shortlists them."""

    def __init__(self, embedder: Embedder, shortlist: int = SHORTLIST) -> None:
        self.embedder = embedder
        self.shortlist = shortlist
        self.embedded = 0  # units embedded by questions over the reader's lifetime
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def similarity(
        self,
        reading: Reading,
        pooled_similarity: np.ndarray,
        scores: np.ndarray,
        question: np.ndarray,
    ) -> np.ndarray:
        """Per position of `reading.rows`: the similarity to `question`, own vectors for
        the pooled units among the best `shortlist` by `scores`, and the other pooled
        units moved and capped as the module says; units with own vectors as given."""
        pooled = ~reading.index.own[reading.rows]
        if not pooled.any() or self.shortlist < 1:
            return pooled_similarity
        best = _best(scores, self.shortlist)
        found = self._vectors(reading, best[pooled[best]])
        if not found:
            return pooled_similarity
        at = np.fromiter(found, dtype=np.int64, count=len(found))
        own = np.clip(np.stack(list(found.values())) @ question, 0, 1).astype(np.float32)
        shift = float((pooled_similarity[at] - own).mean())
        out = pooled_similarity.copy()
        moved = np.minimum(pooled_similarity[pooled] - shift, float(own.min()))
        out[pooled] = moved.clip(0, 1)
        out[at] = own
        return out

    def _vectors(self, reading: Reading, positions: np.ndarray) -> dict[int, np.ndarray]:
        """Position in `reading.rows` -> the unit's own vector, for each position whose
        unit text could be rebuilt as the index embedded it (hash checked)."""
        texts: dict[int, str] = {}  # unit hash -> text
        owners: dict[int, int] = {}  # position -> unit hash
        for at in positions.tolist():
            row = int(reading.rows[at])
            text = unit_text(reading, row)
            if text is not None:
                owners[at] = unit_hash = int(reading.index.text_hash[row])
                texts[unit_hash] = text
        with self._lock:
            known = {h: self._cache[h] for h in texts if h in self._cache}
            for unit_hash in known:
                self._cache.move_to_end(unit_hash)
        missing = [h for h in texts if h not in known]
        if missing:
            # Embedded as an ingest embeds units (its precision and batches), outside
            # the lock: two questions shortlisting the same new unit at once may both
            # embed it, which costs time, not correctness.
            fresh = self.embedder.embed([texts[h] for h in missing])
            with self._lock:
                for unit_hash, vector in zip(missing, fresh, strict=True):
                    known[unit_hash] = self._cache[unit_hash] = vector
                while len(self._cache) > CACHED_UNITS:
                    self._cache.popitem(last=False)
                self.embedded += len(missing)
        return {at: known[unit_hash] for at, unit_hash in owners.items()}


def unit_text(reading: Reading, row: int) -> str | None:
    """The text the ingest embedded (or pooled) for unit `row`, rebuilt from what the
    reader reads; None if it is not in the reading or does not hash as the index says
    (then the unit is not re-scored)."""
    try:
        sentence = reading.sentence(row)
    except LookupError:  # KeyError too: a document the reading holds no title of
        return None
    text = embedding_text(sentence.title, reading.index.context_of(row), sentence.text)
    return text if hash64(text) == int(reading.index.text_hash[row]) else None


def _best(scores: np.ndarray, count: int) -> np.ndarray:
    """Positions of the `count` highest scores (ties: the lower position first)."""
    if len(scores) <= count:
        return np.argsort(-scores, kind="stable")
    cut = np.partition(-scores, count - 1)[count - 1]  # the count-th best, negated
    above = np.flatnonzero(-scores < cut)
    top = np.concatenate([above, np.flatnonzero(-scores == cut)[: count - len(above)]])
    return top[np.lexsort((top, -scores[top]))]
