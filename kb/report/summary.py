"""The report's summary as typed values: what `summary.json` holds and every renderer
reads. Built by `kb.report.summarize`; a metric that does not apply is None."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kb.report.metrics import ThresholdPoint


@dataclass(frozen=True, slots=True)
class Latency:
    """End-to-end seconds per question of one mode."""

    p50: float | None
    p95: float | None
    mean: float | None
    cold_count: int
    cold_p50: float | None
    warm_long_context_p50: float | None
    rag_path_p50: float | None


@dataclass(frozen=True, slots=True)
class TokenMeans:
    """Mean tokens per question, split the way providers bill them."""

    input_tokens: float | None
    cache_read_tokens: float | None
    cache_write_tokens: float | None
    output_tokens: float | None

    @property
    def total(self) -> float:
        return sum(v or 0.0 for v in asdict(self).values())


@dataclass(frozen=True, slots=True)
class ModeSummary:
    """The metrics of one mode. When no question was answered (the mode could not
    run), every metric is None and `first_error` says why."""

    questions: int
    errors: int
    first_error: str | None = None
    answered: int | None = None
    accuracy: float | None = None
    accuracy_questions: int = 0  # the questions accuracy is over (retrieval-only aside)
    exact_match: float | None = None
    f1: float | None = None
    contains: float | None = None
    refusal_accuracy: float | None = None
    false_refusal_rate: float | None = None
    citation_precision: float | None = None
    citation_recall: float | None = None
    evidence_coverage: float | None = None
    evidence_questions: int = 0
    latency_s: Latency | None = None
    tokens_per_question: TokenMeans | None = None
    long_context_share: float | None = None
    escalation_share: float | None = None
    run_cost_usd: float | None = None

    @property
    def ran(self) -> bool:
        return self.answered is not None


@dataclass(frozen=True, slots=True)
class RecallAtK:
    all_gold: float | None
    fraction: float | None


@dataclass(frozen=True, slots=True)
class ModeCost:
    """One mode's projected cost on one price model."""

    per_1000_without_cache_usd: float
    per_1000_with_cache_usd: float
    per_1000_warm_cache_usd: float
    monthly_with_cache_usd: float
    monthly_without_cache_usd: float
    prefix_share: float
    write_surcharge_usd: float
    # An explicit cache's storage in monthly_with_cache_usd (Gemini; 0 elsewhere): the
    # cached prefix kept for its lifetime after every cache write of the month.
    monthly_storage_usd: float = 0.0
    cached_prefix_tokens: int = 0
    cached_hours_per_month: float = 0.0


@dataclass(frozen=True, slots=True)
class BreakEvenSummary:
    volumes_per_month: list[int]
    cheaper_side: list[str]
    cheaper_at_low_volume: str
    cheaper_at_high_volume: str
    explanation: str


@dataclass(frozen=True, slots=True)
class ModelRates:
    """The per-million-token rates a model's projection used at the long-context
    prompt size (tiered prices resolved), and where they come from: the price table
    or an override file. None where the source has no such rate."""

    input_mtok: float
    cache_read_mtok: float | None
    cache_write_mtok: float | None  # 5-minute lifetime, where priced apart
    cache_write_1h_mtok: float | None
    tier_start: int | None  # input tokens above which the prices step up
    source: str


@dataclass(frozen=True, slots=True)
class ModelCosts:
    modes: dict[str, ModeCost]
    break_even: dict[str, BreakEvenSummary]
    context_window: int | None
    # Dollars per million tokens per hour an explicit cache is kept, and the rate's
    # source (an override, or kb's table: genai-prices has none); None where no
    # storage is billed or no rate is known.
    storage_mtok_hour: float | None = None
    storage_source: str | None = None
    rates: ModelRates | None = None
    # The override file that priced this model ("KB_PRICE_OVERRIDES (prices.json)"),
    # None when the price table did.
    price_override: str | None = None


@dataclass(frozen=True, slots=True)
class CostSummary:
    """Projections at the assumed monthly volume for every price model."""

    projection: bool
    monthly_questions: int
    cache_ttl_minutes: float
    cache_lifetimes_per_month: float | None
    long_context_prompt_tokens: int | None
    models: dict[str, ModelCosts]


@dataclass(frozen=True, slots=True)
class CorpusInfo:
    version: str
    root: str
    documents: int
    chunks: int
    corpus_tokens: int
    fits_long_context: bool
    gold_docs_in_corpus: float | None


@dataclass(frozen=True, slots=True)
class RunSettings:
    top_k: int
    long_context_budget: int
    answer_reserve: int
    extractive_threshold: float
    chunk_tokens: int
    chunk_overlap: int


@dataclass(frozen=True, slots=True)
class Assumptions:
    cache_ttl_minutes: float
    monthly_questions: int
    price_models: list[str]
    price_source: str


@dataclass(frozen=True, slots=True)
class Machine:
    cpus: int | None
    load_average_start: float
    load_average_end: float


@dataclass(frozen=True, slots=True)
class AutoChoice:
    """What the router's `auto` mode chooses for this corpus (for a question of no
    length) and why, with the share of the run's auto questions it sent to long
    context."""

    path: str
    reason: str
    long_context_share: float | None


@dataclass(frozen=True, slots=True)
class Recommendation:
    """Long context or retrieval for this corpus, this backend and the assumed volume.

    `path` is None when the run lacks one of the two paths. `text` is the report's
    opening paragraph; `warning` is set when the router's auto choice disagrees."""

    path: str | None
    text: str
    cost_model: str | None
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class JudgeSummary:
    """What the judge decided: its name, its accuracy and faithfulness per mode, its
    agreement with containment where both decide, and the disagreements to check."""

    judge: str
    judged: int  # answered, answerable questions x modes with a correctness verdict
    undecided: int  # replies that were no verdict (kb.report.judge.verdict)
    accuracy: dict[str, float | None]
    faithfulness: dict[str, float | None]
    agreement_with_contains: float | None
    disagreements: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ReportSummary:
    """Everything the report states, in one typed value."""

    title: str
    generated_at: str
    questions_file: str
    questions: int
    answerable: int
    unanswerable: int
    retrieval_only: int
    with_gold_docs: int
    seed: int
    limit: int | None
    modes_run: list[str]
    backend: str
    offline_reader: bool
    settings: RunSettings
    corpus: CorpusInfo
    assumptions: Assumptions
    notes: list[str]
    run_seconds: float
    retrieval_recall: dict[str, RecallAtK]
    retrieval_search_p50_s: float | None
    modes: dict[str, ModeSummary]
    threshold_tradeoff: dict[str, list[ThresholdPoint]]
    long_context_rag_same_answer: float | None
    costs: CostSummary
    machine: Machine
    warm_up_s: dict[str, float]
    auto: AutoChoice
    recommendation: Recommendation
    judge: JudgeSummary | None = None

    @property
    def modes_that_ran(self) -> dict[str, ModeSummary]:
        return {mode: m for mode, m in self.modes.items() if m.ran}

    def to_json(self) -> dict[str, Any]:
        """The summary as the JSON object of summary.json."""
        return asdict(self)
