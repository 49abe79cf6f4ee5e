"""A report's recommendation, recorded for the router (`kb report --record`).

One JSON file in the data dir, `recommendation.json`: the path the report
recommended, the backend it measured, the corpus version it measured (each
document's content hash and tokens, so later drift can be measured), the numbers
behind the choice and the report's name. `kb.router` decides whether `auto` still
follows it; this module only stores it and measures drift.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kb.core.errors import InvalidRequestError
from kb.core.models import Manifest
from kb.store.corpus import now, write_atomic

RECORD_FILE = "recommendation.json"


@dataclass(frozen=True, slots=True)
class RecordedRecommendation:
    """What a report recommended, for which backend and corpus version, and why."""

    path: str  # long_context or rag
    backend: str
    report: str  # the report's title and folder, as the route reason names it
    corpus_version: str
    corpus_tokens: int
    doc_hashes: dict[str, str]
    doc_tokens: dict[str, int]
    numbers: dict[str, float | None] = field(default_factory=dict)
    recorded_at: str = ""


@dataclass(frozen=True, slots=True)
class Drift:
    """How far a corpus moved from the recorded version: the share of its documents
    added, changed or removed, and the share of its tokens they hold."""

    documents: int
    documents_share: float
    tokens_share: float

    @property
    def share(self) -> float:
        return max(self.documents_share, self.tokens_share)

    def explain(self) -> str:
        return (
            f"{self.documents} document(s) changed since ({self.documents_share:.1%} of "
            f"documents, {self.tokens_share:.1%} of tokens)"
        )


def record_recommendation(
    data_dir: Path,
    manifest: Manifest,
    *,
    path: str | None,
    backend: str,
    report: str,
    numbers: dict[str, float | None],
) -> RecordedRecommendation:
    """Write the recommendation for `manifest`'s corpus version; replaces an earlier one.
    Raises InvalidRequestError when the report reached no recommendation."""
    if path not in ("long_context", "rag"):
        raise InvalidRequestError(
            "This report reached no recommendation (it needs both long_context and rag "
            "answers), so there is nothing to record."
        )
    recorded = RecordedRecommendation(
        path=path,
        backend=backend,
        report=report,
        corpus_version=manifest.corpus_version,
        corpus_tokens=manifest.corpus_tokens,
        doc_hashes={d.doc_id: d.content_hash for d in manifest.documents},
        doc_tokens={d.doc_id: d.tokens for d in manifest.documents},
        numbers=numbers,
        recorded_at=now(),
    )
    write_atomic(data_dir / RECORD_FILE, json.dumps(asdict(recorded), indent=2))
    return recorded


def load_recommendation(data_dir: Path) -> RecordedRecommendation | None:
    """The recorded recommendation, or None when none was recorded (or it cannot be
    read: then the router's own rule decides, as without one)."""
    try:
        raw = json.loads((data_dir / RECORD_FILE).read_text("utf-8"))
        return RecordedRecommendation(**raw)
    except (OSError, ValueError, TypeError):
        return None


def measure_drift(recorded: RecordedRecommendation, manifest: Manifest) -> Drift:
    """Documents added, changed (another content hash) or removed since the recorded
    version, as a share of the recorded documents and of the recorded tokens."""
    now_docs = {d.doc_id: d for d in manifest.documents}
    moved_tokens = 0
    moved = 0
    for doc_id, doc in now_docs.items():
        if recorded.doc_hashes.get(doc_id) != doc.content_hash:
            moved += 1
            moved_tokens += max(doc.tokens, recorded.doc_tokens.get(doc_id, 0))
    for doc_id, tokens in recorded.doc_tokens.items():
        if doc_id not in now_docs:
            moved += 1
            moved_tokens += tokens
    return Drift(
        documents=moved,
        documents_share=moved / max(1, len(recorded.doc_hashes)),
        tokens_share=moved_tokens / max(1, recorded.corpus_tokens),
    )
