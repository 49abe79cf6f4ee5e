"""Issue 20, F1: races against the loader. Another thread swaps a corpus file (or a
sub-folder) for a symlink to a file outside the corpus, thousands of times, while the
loader walks the folder again and again. Before files were opened relative to their
folder's handle with O_NOFOLLOW, 319 of 7,512 loads indexed the outside file and 49
raised; now none may do either."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ingest.loaders import load_corpus
from tests.conftest import write_corpus

SECRET = "SECRET-OUTSIDE-THE-CORPUS"
SWAPS = 2_000  # each race: this many swaps...
RACE_SECONDS = 20.0  # ...or this long, whichever comes first (a few seconds when idle)
MAX = 20_000_000


@dataclass
class Race:
    loads: int = 0
    swaps: int = 0
    leaked: int = 0
    raised: list[str] = field(default_factory=list)
    reasons: set[str] = field(default_factory=set)


def _race(root: Path, swap: str, swaps: int = SWAPS, seconds: float = RACE_SECONDS) -> Race:
    """Load `root` in a loop while another process runs the statements `swap` `swaps`
    times (a process, not a thread: the swaps must not wait for the loader's GIL)."""
    race = Race()
    script = (
        "import os, sys, time\n"
        f"deadline = time.monotonic() + {seconds}\n"
        "swaps = 0\n"
        f"while swaps < {swaps} and time.monotonic() < deadline:\n"
        + textwrap.indent(textwrap.dedent(swap), "    ")
        + "    swaps += 1\n"
        "print(swaps)\n"
    )
    swapper = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        while swapper.poll() is None:
            try:
                result = load_corpus(root, MAX)
            except Exception as exc:  # counted: the test fails on any
                race.raised.append(f"{type(exc).__name__}: {exc}")
                continue
            race.loads += 1
            race.leaked += sum(SECRET in doc.text for doc in result.documents)
            race.reasons.update(skipped.reason for skipped in result.skipped)
    finally:
        out, _ = swapper.communicate(timeout=seconds + 30)
    assert swapper.returncode == 0
    race.swaps = int(out)
    return race


@pytest.mark.integration
def test_a_file_swapped_for_an_outside_symlink_is_never_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text(f"# Secret\n\n{SECRET}\n", "utf-8")
    root = write_corpus(
        tmp_path / "c", {"a.md": "# A\n\nAlpha.\n", "b.md": "# B\n\nBeta.\n", "z.md": "Zed.\n"}
    )
    # Both moves are atomic renames: the name always exists, as a file or a link.
    swap = f"""
        os.symlink({str(outside)!r}, {str(tmp_path / "link.tmp")!r})
        os.replace({str(tmp_path / "link.tmp")!r}, {str(root / "b.md")!r})
        with open({str(tmp_path / "file.tmp")!r}, "w") as f:
            f.write("# Swapped\\n\\nA plain file.\\n")
        os.replace({str(tmp_path / "file.tmp")!r}, {str(root / "b.md")!r})
    """
    race = _race(root, swap)
    assert race.raised == []
    assert race.leaked == 0
    assert race.swaps == SWAPS and race.loads >= 200, race


@pytest.mark.integration
def test_a_folder_swapped_for_an_outside_symlink_mid_read_is_never_entered(
    tmp_path: Path,
) -> None:
    big = "Plain inside text.\n" * 60_000  # ~1 MB: the swap lands while it is being read
    outside = tmp_path / "outside"
    write_corpus(outside, {"big.md": f"# Secret\n\n{SECRET}\n" + big})
    root = write_corpus(tmp_path / "c", {"a.md": "# A\n\nAlpha.\n", "sub/big.md": big})
    sub, parked, link = (str(p) for p in (root / "sub", tmp_path / "parked", tmp_path / "l"))
    swap = f"""
        os.symlink({str(outside)!r}, {link!r})
        os.rename({sub!r}, {parked!r})
        os.rename({link!r}, {sub!r})
        time.sleep(0.0002)
        os.rename({sub!r}, {link!r})
        os.rename({parked!r}, {sub!r})
        os.unlink({link!r})
    """
    race = _race(root, swap)
    assert race.raised == []
    assert race.leaked == 0
    assert race.swaps == SWAPS and race.loads >= 20, race


@pytest.mark.integration
def test_a_file_rewritten_while_it_is_read_is_skipped_with_a_reason(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "c", {"a.md": "# A\n\nAlpha.\n", "grow.md": "x\n" * 400_000})

    rewrite = f"""
        with open({str(root / "grow.md")!r}, "a") as handle:
            handle.write("more\\n")
    """
    race = _race(root, rewrite, swaps=10**9, seconds=2.0)
    assert race.raised == []
    assert race.reasons == {"file changed while it was read; the next ingest reads it again"}
    assert load_corpus(root, MAX).skipped == []  # quiet again: read whole
