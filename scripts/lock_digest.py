"""The digest of pyproject.toml's requirements that each lock file records.

`scripts/lock.sh` writes it into the lock files' first line; `scripts/setup.sh` and
`tests/test_lock.py` recompute it, so a lock that no longer matches pyproject.toml is
caught before anything is installed. Standard library only: it runs before the venv has
anything in it.

    python3 scripts/lock_digest.py            print the digest of pyproject.toml
    python3 scripts/lock_digest.py --check    exit 1, saying what to do, if a lock is stale
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK_FILES = (
    "requirements.lock",
    "requirements-dev.lock",
    "requirements-model.lock",
    "requirements-uv.lock",
)
DIGEST_PREFIX = "# pyproject-digest: "


def pyproject_digest(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """sha256 of the requirements (runtime, extras, Python) in a canonical form."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    wanted = {
        "requires-python": project.get("requires-python", ""),
        "dependencies": sorted(project.get("dependencies", [])),
        "optional-dependencies": {
            name: sorted(reqs) for name, reqs in project.get("optional-dependencies", {}).items()
        },
    }
    canonical = json.dumps(wanted, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def recorded_digest(lock: Path) -> str | None:
    """The digest a lock file was made from, or None when it records none."""
    with lock.open(encoding="utf-8") as handle:
        first = handle.readline().rstrip("\n")
    return first[len(DIGEST_PREFIX) :] if first.startswith(DIGEST_PREFIX) else None


def stale_locks(root: Path = ROOT) -> list[str]:
    """The lock files that are missing or were made from another pyproject.toml."""
    digest = pyproject_digest(root / "pyproject.toml")
    stale = []
    for name in LOCK_FILES:
        lock = root / name
        if not lock.is_file() or recorded_digest(lock) != digest:
            stale.append(name)
    return stale


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        stale = stale_locks()
        if stale:
            print(
                f"lock: {', '.join(stale)} do(es) not match pyproject.toml's requirements; "
                "run `bash scripts/lock.sh` and commit the lock files",
                file=sys.stderr,
            )
            return 1
        return 0
    print(pyproject_digest())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
