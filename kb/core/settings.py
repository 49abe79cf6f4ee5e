"""One settings object for the whole service, read from `KB_*` variables and `.env`.

Build it with `load_settings()` at the edge (CLI, app factory, tests) and pass it
down; nothing below reads the environment itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kb.core.errors import InvalidRequestError, SettingsError

Mode = Literal["auto", "long_context", "rag", "self_route"]
EmbedBackend = Literal["onnx", "onnx-int8", "torch"]
EmbedPrecision = Literal["auto", "fp32", "bf16"]

# Chosen on the dev sets, by the worst of them (docs/benchmarks.md, "Retrieval").
RAG_CONTEXT_TOKENS_DEFAULT = 6_000
TOP_K_DEFAULT = 60
MODES: tuple[str, ...] = get_args(Mode)
TOP_K_MIN, TOP_K_MAX = 1, 100  # passages a retrieval question may ask for

# ---- knowledge bases ----
DEFAULT_KB = "default"  # the knowledge base in KB_DATA_DIR itself (the single-corpus layout)
KB_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9_-]{0,30}[a-z0-9])?$"
KB_NAME_RULE = (
    "1-32 characters: lowercase letters, digits, '-' and '_', starting and ending with a "
    "letter or digit"
)
KBS_FOLDER = "kbs"  # DATA_DIR/kbs/<name>/ holds each named knowledge base


def check_mode(mode: str) -> str:
    """`mode` if it is one of MODES; else InvalidRequestError naming them."""
    if mode not in MODES:
        raise InvalidRequestError(f"Unknown mode {mode!r}: use one of {', '.join(MODES)}.")
    return mode


def check_top_k(top_k: int) -> int:
    """`top_k` if it lies in TOP_K_MIN..TOP_K_MAX; else InvalidRequestError."""
    if isinstance(top_k, bool) or not TOP_K_MIN <= top_k <= TOP_K_MAX:
        raise InvalidRequestError(
            f"top_k must be between {TOP_K_MIN} and {TOP_K_MAX}, got {top_k}."
        )
    return top_k


class Settings(BaseSettings):
    """Every knob of the service. Environment names are the field names upper-cased
    with the `KB_` prefix, e.g. `KB_DATA_DIR`."""

    model_config = SettingsConfigDict(
        env_prefix="KB_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Where the index lives and what it indexes.
    data_dir: Path = Field(Path(".kb-data"), description="Folder that holds the index.")
    corpus_dir: Path | None = Field(
        None, description="Folder that `POST /v1/ingest` re-indexes (the API's corpus)."
    )
    chroma_url: str | None = Field(
        None, description="A Chroma server (http://host:port); embedded Chroma when unset."
    )
    collection: str = Field("kb_chunks", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,61}[a-zA-Z0-9]$")

    # Ingestion.
    chunk_tokens: int = Field(200, ge=32, le=2048, description="Chunk size in cl100k tokens.")
    chunk_overlap: int = Field(30, ge=0, le=512, description="Token overlap between chunks.")
    max_file_bytes: int = Field(20_000_000, ge=1, description="Larger files are skipped.")
    embed_batch_size: int = Field(
        16, ge=1, le=4096, description="Texts per model call (16 measured fastest on 2 cores)."
    )
    embed_backend: EmbedBackend = Field(
        "torch",
        description="Runtime of the bundled embedding model: `torch`, `onnx` (ONNX Runtime, "
        "exported once from the installed weights, offline) or `onnx-int8` (that export with "
        "int8 weights, made once beside it: about 2x torch's speed, but up to 7.5 points "
        "of recall@5 lower on the dev sets, see bench/results/). Part of the index's "
        "config: switching re-embeds.",
    )
    embed_precision: EmbedPrecision = Field(
        "auto",
        description="Arithmetic of the torch runtime: `bf16` runs the model's matrix "
        "products in bfloat16 (torch autocast; vectors at cosine 0.9999+ of fp32's), `fp32` "
        "in float32, `auto` bf16 where the CPU computes it natively (AVX512-BF16 or AMX) "
        "and fp32 elsewhere. Not part of the index's config: vectors of both mix safely. "
        "ONNX runtimes ignore it.",
    )
    embed_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="Threads the embedding model uses per process; 0: one when answering "
        "(ask, serve, report), every available core for `kb ingest`. torch runs whole "
        "batches on each thread, one core each; ONNX Runtime splits each operation.",
    )
    reader_vectors: Literal["separate", "pooled"] = Field(
        "pooled",
        description="How `kb ingest` gets the extractive reader's unit vectors: `pooled` "
        "averages each sentence's (list item's, row's) tokens in its chunk's own forward "
        "pass, so an ingest embeds the chunks only, and a question embeds the 32 units it "
        "shortlists as texts of their own (each unit once per knowledge base a process opens); "
        "`separate` embeds every unit as a text of its own at ingest (2.0x the ingest time "
        "on hotpotqa-100, nothing per question). "
        "Reader accuracy is the same (docs/benchmarks.md). Applies to units embedded from "
        "then on.",
    )
    cache_dir: Path | None = Field(
        None,
        description="Where the ONNX export of the model is kept, shared by every data dir "
        "(default: $XDG_CACHE_HOME/kb, else ~/.cache/kb).",
    )

    # Routing and prompts.
    long_context_budget: int = Field(
        200_000, ge=1_000, description="Most prompt tokens the long-context path may use."
    )
    answer_reserve: int = Field(1_024, ge=16, description="Tokens kept free for the answer.")
    top_k: int = Field(
        TOP_K_DEFAULT,
        ge=TOP_K_MIN,
        le=TOP_K_MAX,
        description="Most chunks the retrieval path puts in the prompt (a cap under "
        "`rag_context_tokens`).",
    )
    rag_context_tokens: int = Field(
        RAG_CONTEXT_TOKENS_DEFAULT,
        ge=200,
        le=1_000_000,
        description="Token budget of the retrieved passages in a retrieval prompt.",
    )
    retrieval_hops: Literal["auto", "1", "2"] = Field(
        "auto",
        description="`auto` adds a second search seeded by the best passage when the "
        "first round calls for one; `1` never, `2` always.",
    )
    default_mode: Mode = "auto"
    auto_max_cost_ratio: float = Field(
        20.0,
        gt=1.0,
        description="`auto` retrieves instead when a cached long-context question "
        "costs more than this many times a retrieval question.",
    )
    recommendation_max_drift: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="`auto` follows a report's recorded recommendation (`kb report --record`) "
        "while the documents changed since, and their tokens, stay within this share.",
    )

    # Answer backend: `extractive`, `openai:<model>`, `anthropic:<model>`, `local:<gguf>`.
    backend: str = "extractive"
    base_url: str | None = Field(None, description="Base URL for an OpenAI-compatible server.")
    api_key: str | None = Field(None, description="Key for the provider behind `backend`.")
    context_window: int | None = Field(
        None, ge=1_000, description="Override the backend's context window in tokens."
    )
    request_timeout: float = Field(120.0, gt=0)
    max_output_tokens: int = Field(512, ge=1, le=32_000)
    extractive_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="The extractive reader refuses below this score."
    )
    price_overrides: Path | None = Field(
        None, description="JSON file of per-model prices that override genai-prices."
    )

    # Service.
    url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="A running `kb serve` (http://host:port): `kb ask` and `kb chat` send "
        "their questions there instead of loading the model in the command.",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    service_api_key: str | None = Field(
        None, description="Bearer key that protects ingest, and queries if required."
    )
    require_key_for_queries: bool = False

    # ---- knowledge bases and scoped keys ----
    knowledge_base: str | None = Field(
        None,
        description="The knowledge base a command works on (`--kb NAME`): its index lives in "
        "DATA_DIR/kbs/NAME with the Chroma collection COLLECTION-NAME. Unset or `default`: "
        "DATA_DIR itself (the single-corpus layout).",
    )
    keys_file: Path | None = Field(
        None,
        description="JSON file of scoped API keys, stored as salted scrypt hashes "
        "(default: DATA_DIR/keys.json; `kb keys create` writes it). Once it holds a key, "
        "every request needs a key.",
    )
    max_loaded_kbs: int = Field(
        8,
        ge=1,
        le=1_000,
        description="Most named knowledge bases a server keeps loaded; the least recently "
        "used one is closed when another is needed.",
    )
    max_question_chars: int = Field(4_000, ge=1)
    max_body_bytes: int = Field(1_000_000, ge=1_000)

    # ---- knowledge bases ----
    @property
    def kb_name(self) -> str:
        """The knowledge base these settings describe (`default` for DATA_DIR itself)."""
        return self.knowledge_base or DEFAULT_KB

    @property
    def kb_root(self) -> Path:
        """KB_DATA_DIR as configured: the default knowledge base, and `kbs/` beneath it."""
        if self.kb_name == DEFAULT_KB:
            return self.data_dir
        return self.data_dir.parent.parent

    def keys_path(self) -> Path:
        """Where scoped keys are kept."""
        return self.keys_file or self.kb_root / "keys.json"

    def _derive_knowledge_base(self) -> None:
        """Point data_dir and collection at the named knowledge base (once)."""
        name = self.kb_name
        derived = self.data_dir.name == name and self.data_dir.parent.name == KBS_FOLDER
        if name == DEFAULT_KB or derived:
            return
        self.data_dir = self.data_dir / KBS_FOLDER / name
        self.collection = f"{self.collection}-{name}"

    @field_validator("knowledge_base")
    @classmethod
    def _check_kb_name(cls, name: str | None) -> str | None:
        if name is not None and not re.match(KB_NAME_PATTERN, name):
            raise ValueError(f"knowledge base name {name!r} is invalid: use {KB_NAME_RULE}")
        return name

    def model_cache_dir(self) -> Path:
        """The folder for derived model files (the ONNX export)."""
        return self.cache_dir or default_cache_dir()

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than "
                f"chunk_tokens ({self.chunk_tokens})"
            )
        if self.require_key_for_queries and not self.service_api_key:
            raise ValueError("KB_REQUIRE_KEY_FOR_QUERIES needs KB_SERVICE_API_KEY")
        self._derive_knowledge_base()  # issue 19: a named knowledge base's own folder
        return self


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/kb, else ~/.cache/kb."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kb"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (and `.env`), applying explicit overrides.

    Raises SettingsError naming every invalid variable, so a bad value stops the
    service at start rather than deep inside a request."""
    clean = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"KB_{'_'.join(str(p) for p in err['loc']).upper() or 'SETTINGS'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"Invalid settings: {problems}") from exc
