"""`kb serve`: run the HTTP service with uvicorn."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from api.app import create_app, limit_embedding_threads
from kb.core import load_settings

if TYPE_CHECKING:
    from kb.core import Settings

HELP = "Serve the HTTP API and web page (host, port and workers from KB_* settings)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (default: KB_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: KB_PORT, 8000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: KB_WORKERS, 1); each loads its own models",
    )
    parser.add_argument(
        "--corpus-dir", default=None, help="folder POST /v1/ingest re-indexes (KB_CORPUS_DIR)"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level (default: info)",
    )
    parser.add_argument("--no-access-log", action="store_true", help="do not log every request")


LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


def exposure_warning(settings: Settings) -> str | None:
    """A warning when the service listens beyond this machine with no key set."""
    loopback = settings.host in LOOPBACK_HOSTS or settings.host.startswith("127.")
    if loopback or settings.service_api_key:
        return None
    return (
        f"warning: serving on {settings.host}:{settings.port} without KB_SERVICE_API_KEY: "
        "anyone who can reach this address can read the corpus through questions. Set "
        "KB_SERVICE_API_KEY and KB_REQUIRE_KEY_FOR_QUERIES=true, or bind to 127.0.0.1."
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    overrides = {
        "data_dir": args.data_dir,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "corpus_dir": args.corpus_dir,
    }
    settings = load_settings(**overrides)  # validates every KB_* value before binding
    if warning := exposure_warning(settings):
        print(warning, file=sys.stderr)
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_level": args.log_level,
        "access_log": not args.no_access_log,
    }
    if settings.workers == 1:
        limit_embedding_threads(settings)
        uvicorn.run(create_app(settings), **common)
        return 0
    # Worker processes build their own app from the environment, so the command-line
    # overrides travel there as KB_* variables.
    for name, value in overrides.items():
        if value is not None:
            os.environ[f"KB_{name.upper()}"] = str(value)
    uvicorn.run(
        "api.app:create_app_from_env",
        factory=True,
        workers=settings.workers,
        **common,
    )
    return 0
