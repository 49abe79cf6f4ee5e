"""The core of the knowledge service: settings, tokens, store access, routing,
prompts, answer backends, citations, cost, evaluation and the report.

`kb` never imports `api` or FastAPI; `ingest` and `api` build on it.
"""

__version__ = "0.1.0"
