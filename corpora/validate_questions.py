"""Check an evaluation set against the corpus it was written for.

Loads the corpus with the project's own loader (so document ids and text are exactly
what `kb ingest` indexes) and checks every line of the questions file: the fields of
the `../shared/datasets/*/questions.jsonl` format, unique qids, gold ids that exist,
and that every reference answer of an answerable question appears verbatim in one of
its gold documents. Prints a summary and exits 1 if anything is wrong.

    .venv/bin/python corpora/validate_questions.py corpora/handbook \
        corpora/handbook.questions.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ingest.loaders import load_corpus

REQUIRED = {
    "qid": str,
    "question": str,
    "answers": list,
    "gold_doc_ids": list,
    "is_impossible": bool,
}


def check(corpus: Path, questions: Path) -> list[str]:
    """Every problem found, one line each; an empty list means the set is valid."""
    loaded = load_corpus(corpus, max_file_bytes=20_000_000)
    problems = [f"corpus file skipped: {s.path}: {s.reason}" for s in loaded.skipped]
    texts = {doc.doc_id: doc.text for doc in loaded.documents}
    seen: set[str] = set()
    lines = questions.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        where = f"{questions.name}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: invalid JSON: {exc.msg}")
            continue
        wrong = [key for key, kind in REQUIRED.items() if not isinstance(row.get(key), kind)]
        if wrong:
            problems.append(f"{where}: missing or mistyped fields {wrong}")
            continue
        if row["qid"] in seen:
            problems.append(f"{where}: duplicate qid {row['qid']}")
        seen.add(row["qid"])
        missing = [doc_id for doc_id in row["gold_doc_ids"] if doc_id not in texts]
        if missing or not row["gold_doc_ids"]:
            problems.append(f"{where}: gold_doc_ids not in the corpus: {missing or '(none)'}")
            continue
        if row["is_impossible"]:
            if row["answers"]:
                problems.append(f"{where}: an impossible question must have no answers")
            continue
        if not row["answers"]:
            problems.append(f"{where}: an answerable question needs at least one answer")
        for answer in row["answers"]:
            if not any(answer in texts[doc_id] for doc_id in row["gold_doc_ids"]):
                problems.append(f"{where}: answer {answer!r} is in none of its gold documents")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="the folder that `kb ingest` indexes")
    parser.add_argument("questions", type=Path, help="questions.jsonl written for it")
    args = parser.parse_args()
    problems = check(args.corpus, args.questions)
    rows = [json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines()]
    impossible = sum(1 for row in rows if row.get("is_impossible"))
    multi = sum(1 for row in rows if len(row.get("gold_doc_ids", [])) > 1)
    print(
        f"{len(rows)} questions: {len(rows) - impossible} answerable, {impossible} unanswerable, "
        f"{multi} with more than one gold document"
    )
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    print("valid" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
