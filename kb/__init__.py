"""kb: answers questions over a team's own documents, from the whole corpus in one
cached prompt or from retrieved, cited passages, whichever the question needs.

The public names are below; `api/` and `bench/` import only these (and those of the
packages' `__init__`), never a module inside (tests/test_architecture.py checks it).

    from kb import KnowledgeBase, load_settings

    with KnowledgeBase(load_settings()) as kb:
        answer = kb.ask("Who approves a hotfix during the freeze?")
        print(answer.answer, answer.route.path, [c.doc_id for c in answer.citations])

Packages, lowest first (each imports only from those before it):

    kb/core/      errors, settings, typed values, tokens, text and tables
    kb/store/     the versioned corpus on disk: snapshot, vectors, BM25, checks
    kb/search/    embedding, hybrid retrieval, numbered passages
    kb/backends/  answer backends, their prompts and prices; the offline reader
    kb/*.py       the question path: service (KnowledgeBase), router, conversation,
                  citations, the recorded recommendation, several knowledge bases
    kb/report/    the long-context-against-retrieval report

`kb` never imports `api` or FastAPI; `ingest` and `api` build on it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the public names, for type checkers; at run time they load on first use
    from kb.across import CrossAnswer, ask_across
    from kb.conversation import Turn
    from kb.core.errors import (
        AuthError,
        BackendError,
        CorpusDamagedError,
        DiskFullError,
        IngestBusyError,
        IngestError,
        InvalidRequestError,
        KBError,
        KnowledgeBaseExistsError,
        KnowledgeBaseNotFoundError,
        NoQuestionsKeptError,
        NotIngestedError,
        ScopeError,
        ServiceError,
        SettingsError,
        UserError,
    )
    from kb.core.models import (
        Answer,
        Citation,
        DocumentList,
        IngestSummary,
        Route,
        SearchResult,
        Usage,
    )
    from kb.core.settings import Settings, load_settings
    from kb.keys import ADMIN, NOBODY, OPEN, Access, KeyStore
    from kb.knowledge_bases import (
        UNLOAD_GRACE_S,
        KnowledgeBases,
        check_name,
        not_found,
        record_source,
        root_settings,
    )
    from kb.service import CorpusStatus, KnowledgeBase

# Each public name and the module it comes from. Nothing loads until a name is used,
# so `import kb.core.settings` (`kb --help`, an extraction worker) does not load the
# question path.
_FROM = {
    "kb.across": ("CrossAnswer", "ask_across"),
    "kb.conversation": ("Turn",),
    "kb.core.errors": (
        "AuthError",
        "BackendError",
        "CorpusDamagedError",
        "DiskFullError",
        "IngestBusyError",
        "IngestError",
        "InvalidRequestError",
        "KBError",
        "KnowledgeBaseExistsError",
        "KnowledgeBaseNotFoundError",
        "NoQuestionsKeptError",
        "NotIngestedError",
        "ScopeError",
        "ServiceError",
        "SettingsError",
        "UserError",
    ),
    "kb.core.models": (
        "Answer",
        "Citation",
        "DocumentList",
        "IngestSummary",
        "Route",
        "SearchResult",
        "Usage",
    ),
    "kb.core.settings": ("Settings", "load_settings"),
    "kb.keys": ("ADMIN", "NOBODY", "OPEN", "Access", "KeyStore"),
    "kb.knowledge_bases": (
        "UNLOAD_GRACE_S",
        "KnowledgeBases",
        "check_name",
        "not_found",
        "record_source",
        "root_settings",
    ),
    "kb.service": ("CorpusStatus", "KnowledgeBase"),
}
_MODULE_OF = {name: module for module, names in _FROM.items() for name in names}

if not TYPE_CHECKING:  # hidden from type checkers, which then catch a misspelled name

    def __getattr__(name: str) -> Any:
        if name not in _MODULE_OF:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
        globals()[name] = value  # the next use is a plain lookup
        return value


__version__ = "0.1.0"

__all__ = [
    "ADMIN",
    "Access",
    "Answer",
    "AuthError",
    "BackendError",
    "Citation",
    "CorpusDamagedError",
    "CorpusStatus",
    "CrossAnswer",
    "DiskFullError",
    "DocumentList",
    "IngestBusyError",
    "IngestError",
    "IngestSummary",
    "InvalidRequestError",
    "KBError",
    "KeyStore",
    "KnowledgeBase",
    "KnowledgeBaseExistsError",
    "KnowledgeBaseNotFoundError",
    "KnowledgeBases",
    "NOBODY",
    "NoQuestionsKeptError",
    "NotIngestedError",
    "OPEN",
    "Route",
    "ScopeError",
    "SearchResult",
    "ServiceError",
    "Settings",
    "SettingsError",
    "Turn",
    "UNLOAD_GRACE_S",
    "Usage",
    "UserError",
    "__version__",
    "ask_across",
    "check_name",
    "load_settings",
    "not_found",
    "record_source",
    "root_settings",
]
