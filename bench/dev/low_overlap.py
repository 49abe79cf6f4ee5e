"""A dev set whose questions share few words with their evidence: the hotpotqa-100
questions with the lowest share of their content words found in their gold paragraphs
(titles included), over the whole hotpotqa-100 corpus.

    .venv/bin/python bench/dev/low_overlap.py [--count 40]

Writes bench/dev/hotpotqa-low-overlap.qids.json: the chosen question ids with their
overlap, not the questions (the data stays in ../shared/datasets; the retrieval bench
reads the questions from there by id). The shared sets reward lexical matching; this
one asks whether fusion holds when BM25 has little to go on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kb.core import content_words  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "hotpotqa-100"
OUT = Path(__file__).with_name("hotpotqa-low-overlap.qids.json")


def overlap(question: str, evidence: str) -> float:
    """The share of the question's content words that occur in the evidence."""
    words = content_words(question)
    return len(words & content_words(evidence)) / len(words) if words else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=40)
    args = parser.parse_args()
    docs = {
        d["doc_id"]: f"{d['title']} {d['text']}"
        for d in map(json.loads, (DATASET / "corpus.jsonl").read_text("utf-8").splitlines())
    }
    rows = [json.loads(line) for line in (DATASET / "questions.jsonl").read_text().splitlines()]
    scored = sorted(
        (overlap(r["question"], " ".join(docs[g] for g in r["gold_doc_ids"])), r["qid"])
        for r in rows
        if r.get("gold_doc_ids")
    )[: args.count]
    OUT.write_text(
        json.dumps(
            {
                "source": "hotpotqa-100",
                "rule": "lowest share of question content words in the gold paragraphs",
                "questions": [{"qid": qid, "overlap": round(o, 3)} for o, qid in scored],
            },
            indent=1,
        )
        + "\n"
    )
    mean = sum(o for o, _ in scored) / len(scored)
    print(f"{len(scored)} questions, mean overlap {mean:.2f} (max {scored[-1][0]:.2f}) -> {OUT}")


if __name__ == "__main__":
    main()
