"""`bench/ingest_bench.py --markup`: the long-context snapshot's markup over its text,
per dev set, as `kb ingest` builds it, with no embedding."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ingest import load_corpus
from kb.core import count_tokens, sentence_spans
from kb.store import SnapshotEntry, body_tokens, build_snapshot

DEV_SETS = ["hotpotqa-100", "squad-v2-dev"]
SHORT_PARAGRAPH_TOKENS = 100


def print_markup(datasets: Path, handbook: Path) -> None:
    """The markup of the dev sets, of squad-v2-dev cut into short paragraphs, and of
    the handbook."""
    with tempfile.TemporaryDirectory(prefix="kb-markup-") as work:
        short = short_paragraphs(
            datasets / "squad-v2-dev" / "corpus.jsonl",
            Path(work) / "squad-short-paragraphs.jsonl",
        )
        markup_overhead([datasets / name / "corpus.jsonl" for name in DEV_SETS] + [short])
        markup_overhead([handbook])


def short_paragraphs(source: Path, out: Path, tokens: int = SHORT_PARAGRAPH_TOKENS) -> Path:
    """A short-paragraph corpus: each record of `source` cut at sentence ends into
    paragraphs of about `tokens` cl100k tokens, each a document with the record's title
    (so an article's title repeats across its paragraphs), written to `out` (JSONL)."""
    lines = []
    for record in map(json.loads, source.read_text("utf-8").splitlines()):
        text, pieces, start, end = record["text"], [], None, 0
        for s, e in sentence_spans(text):
            start = s if start is None else start
            end = e
            if count_tokens(text[start:end]) >= tokens:
                pieces.append(text[start:end])
                start = None
        if start is not None:
            pieces.append(text[start:end])
        lines += [
            json.dumps({"doc_id": f"{record['doc_id']}#s{n}", "title": record["title"], "text": p})
            for n, p in enumerate(pieces)
        ]
    out.write_text("\n".join(lines) + "\n", "utf-8")
    return out


def markup_overhead(corpora: list[Path]) -> None:
    """The long-context snapshot's markup per dev set, as `kb ingest` builds it
    (kb/store/snapshot.py), without embedding anything: snapshot tokens / text tokens - 1."""
    for corpus in corpora:
        documents = sorted(load_corpus(corpus, 10**9).documents, key=lambda d: d.doc_id)
        snapshot = build_snapshot(
            [
                SnapshotEntry(d.doc_id, d.title, d.source, d.text, body_tokens(d.text))
                for d in documents
            ]
        )
        text = sum(count_tokens(d.text) for d in documents)
        overhead = snapshot.tokens / text - 1
        verdict = "PASS" if overhead <= 0.05 else "MISS"
        name = corpus.stem if corpus.stem != "corpus" else corpus.parent.name
        print(
            f"  {name:<22} {len(documents):>5} documents  {text:>9,} text tokens  "
            f"{snapshot.tokens:>9,} snapshot tokens  markup {overhead:.2%}  (<= 5%: {verdict})"
        )
