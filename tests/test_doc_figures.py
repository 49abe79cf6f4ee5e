"""The docs cannot go stale: figures match their sources, links resolve, the README stays short.

The figures are checked by `scripts/doc_figures.py` (see docs/development.md)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from kb import Settings

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|home|tmp|opt|root|Users|mnt|srv)/")


def _doc_figures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("doc_figures", ROOT / "scripts/doc_figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["doc_figures"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


doc_figures = _doc_figures()
DOCS: list[Path] = doc_figures.doc_files(ROOT)


def _prose(path: Path) -> list[tuple[int, str]]:
    """The numbered lines of a Markdown file outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens,
    `-1`, `-2`... after a repeated heading."""
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    for _, line in _prose(path):
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            repeat = counts.get(slug, 0)
            counts[slug] = repeat + 1
            anchors.add(slug if repeat == 0 else f"{slug}-{repeat}")
    return anchors


def test_every_doc_figure_matches_its_source() -> None:
    assert doc_figures.problems(ROOT) == []
    assert sum(1 for _ in doc_figures.figures(ROOT)) > 0


def _copy_docs(tmp_path: Path) -> Path:
    """README, docs/ and every source a figure reads, copied under tmp_path."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    for figure in doc_figures.figures(ROOT):
        source = doc_figures.source_path(ROOT, figure.source)
        target = tmp_path / source.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    return tmp_path


def test_a_figure_changed_by_hand_is_caught_and_rewritten(tmp_path: Path) -> None:
    root = _copy_docs(tmp_path)
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    marker = "<!-- fig handbook /modes/long_context/accuracy pct -->"
    assert marker in text, "the README's headline table reads the handbook's accuracy"
    start = text.index(marker) + len(marker)
    written = text[start : text.index("<!--", start)]
    readme.write_text(text[:start] + "55.2%" + text[start + len(written) :], encoding="utf-8")

    found = doc_figures.problems(root)
    assert len(found) == 1
    assert "README.md" in found[0] and "/modes/long_context/accuracy" in found[0]
    assert "'55.2%'" in found[0] and repr(written) in found[0]
    assert doc_figures.main(["--check", "--root", str(root)]) == 1

    assert doc_figures.write(root) == 1
    assert doc_figures.problems(root) == []
    assert readme.read_text(encoding="utf-8") == text


def test_a_changed_source_is_caught(tmp_path: Path) -> None:
    root = _copy_docs(tmp_path)
    summary = root / "reports/handbook/summary.json"
    data = json.loads(summary.read_text(encoding="utf-8"))
    data["corpus"]["corpus_tokens"] = 9  # whatever the report says, no doc says 9
    summary.write_text(json.dumps(data), encoding="utf-8")
    found = doc_figures.problems(root)
    assert found and all("/corpus/corpus_tokens" in line for line in found)


def test_a_marker_that_names_nothing_is_an_error(tmp_path: Path) -> None:
    root = _copy_docs(tmp_path)
    page = root / "docs/extra.md"
    page.write_text(
        "<!-- fig handbook /modes/nowhere/accuracy pct -->1%<!-- /fig -->\n"
        "<!-- fig no-such-report /questions int -->1<!-- /fig -->\n"
        "<!-- fig handbook /questions dollars -->1<!-- /fig -->\n",
        encoding="utf-8",
    )
    found = [line for line in doc_figures.problems(root) if "extra.md" in line]
    assert len(found) == 3
    assert "no 'nowhere'" in found[0]
    assert "does not exist" in found[1]
    assert "unknown format" in found[2]


def test_readme_is_a_short_front_page() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES


def test_readme_opens_with_the_two_commands() -> None:
    blocks = re.findall(
        r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S
    )
    assert blocks[0].startswith("bash scripts/setup.sh && .venv/bin/kb ingest corpora/handbook")
    assert blocks[1].strip() == "bash scripts/test.sh"
    assert "bash scripts/test.sh" in (ROOT / ".ci/run").read_text(encoding="utf-8")


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in readme, f"README does not link docs/{page.name}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for number, line in _prose(doc):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue  # http:, https:, mailto:
            path, _, anchor = target.partition("#")
            resolved = (doc.parent / path).resolve() if path else doc
            if not resolved.exists():
                broken.append(f"{doc.name}:{number}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{doc.name}:{number}: {target} (no such heading)")
    assert broken == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_absolute_machine_paths(doc: Path) -> None:
    found = [
        f"{doc.name}:{n}: {line.strip()}" for n, line in _prose(doc) if MACHINE_PATH.search(line)
    ]
    assert found == []


def test_configuration_lists_every_setting() -> None:
    text = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    settings_part = text.split("## Outside `Settings`")[0]
    documented = set(re.findall(r"^\| `(KB_[A-Z_]+)`", settings_part, flags=re.M))
    fields = {f"KB_{name.upper()}" for name in Settings.model_fields}
    assert sorted(fields - documented) == [], "settings missing from docs/configuration.md"
    assert sorted(documented - fields) == [], "documented variables that are not settings"


CODE_PATH = re.compile(r"`((?:kb|ingest|api|bench|scripts|tests|corpora)/[\w./-]*)`")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_module_exists(doc: Path) -> None:
    missing = [
        f"{doc.name}:{n}: {path}"
        for n, line in _prose(doc)
        for path in CODE_PATH.findall(line)
        if not (ROOT / path.rstrip("/")).exists()
    ]
    assert missing == []


def test_every_benchmark_section_names_its_date_and_command() -> None:
    text = (ROOT / "docs/benchmarks.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    assert sections
    for section in sections:
        title = section.splitlines()[0]
        assert re.search(r"\b20\d\d-\d\d-\d\d\b", section), f"{title}: no date"
        command = re.search(r"`[^`]*(bench/|scripts/|/usr/bin/time)[^`]*`", section)
        assert command or "no script kept" in section, f"{title}: no command"
