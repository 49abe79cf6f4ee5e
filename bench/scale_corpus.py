"""The large corpus of `bench/scale_bench.py`, built from text on this machine only:
the Python 3.11 documentation sources of Debian's `python3.11-doc` package, then
`pydoc_data.topics`, then the docstrings of installed modules (rendered by `pydoc`),
until the corpus holds at least the wanted number of cl100k tokens.

    .venv/bin/python bench/scale_corpus.py --cache DIR [--tokens 2500000]

Writes `DIR/scale-corpus.jsonl` (the datasets' `{"doc_id", "title", "text"}` format)
and `DIR/scale-questions.jsonl` (seeded "What does X do?" questions about functions the
documentation describes). The package is fetched with `apt-get download` (a package
registry) into DIR, never into the repository.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pydoc
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kb.core import count_tokens

PACKAGE = "python3.11-doc"
SOURCES = "usr/share/doc/python3.11/html/_sources"
# Installed modules whose docstrings extend the corpus, in this order (stdlib first,
# then the project's own dependencies); importing none of them has side effects.
MODULES = (
    "builtins collections typing asyncio email.message http.client json logging argparse "
    "pathlib re os subprocess unittest xml.etree.ElementTree sqlite3 decimal datetime "
    "itertools functools inspect threading multiprocessing socket ssl urllib.request "
    "zipfile tarfile shutil tempfile csv configparser dataclasses enum statistics random "
    "string textwrap difflib heapq bisect array struct codecs io time calendar locale "
    "gettext unicodedata hashlib hmac secrets uuid pickle copy pprint reprlib weakref "
    "contextlib abc numbers math cmath fractions operator types importlib ast dis tokenize "
    "traceback warnings pdb timeit cProfile doctest concurrent.futures queue sched select "
    "selectors signal mmap ftplib smtplib imaplib poplib http.server http.cookies "
    "xmlrpc.client ipaddress base64 binascii quopri mimetypes mailbox html.parser "
    "xml.dom.minidom xml.sax wave colorsys platform errno ctypes sysconfig site venv "
    "zipapp zoneinfo graphlib tomllib numpy pydantic fastapi starlette httpx chromadb "
    "tiktoken tqdm filelock bm25s openai anthropic uvicorn"
).split()
FUNCTION = re.compile(r"^\.\. (?:function|method):: ([A-Za-z_][\w.]*)\(", re.MULTILINE)


def fetch_docs(cache: Path) -> Path:
    """The unpacked documentation sources, fetched once into `cache`."""
    unpacked = cache / PACKAGE
    sources = unpacked / SOURCES
    if sources.is_dir():
        return sources
    cache.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", PACKAGE], cwd=cache, check=True)
        debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(unpacked)], check=True)
    return sources


def _title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith((".. ", ":", "*", "=", "-", "#")):
            return line[:120]
    return fallback


def documents(sources: Path) -> Iterator[dict[str, str]]:
    """The documentation pages, then the pydoc topics, then module docstrings."""
    for path in sorted(sources.rglob("*.rst.txt")):
        text = path.read_text("utf-8", errors="replace").strip()
        if text:
            rel = path.relative_to(sources).as_posix()
            yield {"doc_id": f"docs/{rel}", "title": _title(text, rel), "text": text}
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield {"doc_id": f"topics/{name}", "title": f"Python topic: {name}", "text": topics[name]}
    for name in MODULES:
        try:
            module = importlib.import_module(name)
            # plaintext: pydoc's renderer without bold overstrikes (typeshed does not list it)
            text = pydoc.render_doc(module, renderer=pydoc.plaintext)  # type: ignore[attr-defined]
        except Exception:  # an optional package that is missing or will not render
            continue
        yield {"doc_id": f"pydoc/{name}", "title": f"Module {name}", "text": text.strip()}


def build(cache: Path, tokens: int) -> tuple[Path, Path, int]:
    """Write the corpus and its questions; returns their paths and the token count."""
    corpus = cache / f"scale-corpus-{tokens}.jsonl"
    questions = cache / f"scale-questions-{tokens}.jsonl"
    if corpus.exists() and questions.exists():
        total = sum(count_tokens(json.loads(line)["text"]) for line in corpus.open())
        return corpus, questions, total
    total = 0
    names: set[str] = set()
    with open(corpus.with_suffix(".tmp"), "w", encoding="utf-8") as out:
        for doc in documents(fetch_docs(cache)):
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")
            names.update(FUNCTION.findall(doc["text"]))
            total += count_tokens(doc["text"])
            if total >= tokens:
                break
    if total < tokens:
        raise SystemExit(f"only {total:,} tokens of text found; install more packages")
    picked = random.Random(12).sample(sorted(names), 60)
    with open(questions, "w", encoding="utf-8") as out:
        for number, name in enumerate(picked):
            question = f"What does {name}() do?"
            out.write(json.dumps({"qid": f"scale-{number}", "question": question}) + "\n")
    corpus.with_suffix(".tmp").rename(corpus)
    return corpus, questions, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="folder outside the repo")
    parser.add_argument("--tokens", type=int, default=2_500_000)
    args = parser.parse_args()
    corpus, questions, total = build(args.cache, args.tokens)
    print(f"{corpus}: {total:,} tokens; questions in {questions}")


if __name__ == "__main__":
    main()
