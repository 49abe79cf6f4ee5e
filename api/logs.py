"""Log levels of the libraries the service runs on.

Some log each request, with its arguments, at INFO: an MCP request naming a 950 KB
URI wrote 4 MB of log, and httpx logs every upstream URL. They are kept at WARNING
unless a level was set for them (by a logging config, or `--log-level`).
"""

from __future__ import annotations

import logging

LIBRARY_LOGGERS = ("mcp", "httpx", "httpcore", "chromadb", "sse_starlette")


def quiet_library_loggers() -> None:
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        if library.level == logging.NOTSET:
            library.setLevel(logging.WARNING)
