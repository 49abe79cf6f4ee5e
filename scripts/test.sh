#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, lint and type checks included.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_BROWSER=1 bash scripts/setup.sh --dev
.venv/bin/ruff check kb ingest api tests bench scripts corpora
.venv/bin/ruff format --check kb ingest api tests bench scripts corpora
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
