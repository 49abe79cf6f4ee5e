"""The report's caching-rules section: for every price model, the rules its cost
projection follows at this corpus's long-context prompt size, from the price table
(genai-prices), and where the table lacks a rule the provider applies; and the lines
of the cost section that show an explicit cache's storage (kb's own rate table, as
genai-prices has none).

Provider rules the projection follows (late 2026): Anthropic bills a cache write at
1.25x input for a 5-minute lifetime and 2x for 1 hour, reads at 0.1x; OpenAI caches
automatically from 1,024 tokens with no write premium (the cached-input discount
depends on the model; the longer retention option costs no more); Gemini's implicit
caching discounts reads, while an explicit cache is also charged for storage per
token-hour (projected from kb's table of storage rates, `kb.backends.cost`); some
models step their prices up above a prompt size (Gemini above 200k tokens, some OpenAI
models above 272k).
"""

from __future__ import annotations

from kb.backends.cost import CACHE_STORAGE_SOURCE, STORAGE_BILLING_PROVIDERS, split_ref
from kb.report.format import Section, fmt, label
from kb.report.summary import ModelCosts, ReportSummary

PROVIDER_NOTES = {
    "anthropic": "explicit cache_control; no storage charge",
    "openai": "automatic from 1,024 tokens, no write premium; longer retention at no extra price",
    "google": "implicit caching discounts reads without a storage fee; 'with cache' assumes an "
    "explicit cache (reads guaranteed), billed for storage per token-hour (previous column)",
}


def _storage(entry: ModelCosts, provider: str) -> str:
    """The storage column: the rate and its source, or why there is none."""
    rate = entry.storage_mtok_hour
    if rate is not None:
        source = "kb's table" if entry.storage_source == CACHE_STORAGE_SOURCE else "override"
        return f"${rate:.2f} per 1M token-hours ({source})"
    if provider in STORAGE_BILLING_PROVIDERS:
        return "billed, but no rate known for this model: not projected"
    return "none billed"


def _times(rate: float | None, base: float) -> str:
    return "–" if rate is None or not base else f"{rate / base:.2f}x"


def _rules(entry: ModelCosts, provider: str) -> str:
    note = PROVIDER_NOTES.get(provider)
    if entry.price_override is None:
        return note or "as the table lists"
    return f"prices from {entry.price_override}, as given" + (f"; {note}" if note else "")


def override_lines(s: ReportSummary) -> list[str]:
    """A line naming the price models an override file priced, when any was."""
    found = {m: e.price_override for m, e in s.costs.models.items() if e.price_override}
    if not found:
        return []
    models = ", ".join(found)
    return [
        f"Prices of {models} come from {next(iter(found.values()))}, not from "
        "genai-prices: every rate of theirs (input, output, cache read and write, and "
        "storage where it gives one) is the override's, as in the service's own answer "
        "costs."
    ]


def _row(model: str, entry: ModelCosts, prompt: int) -> list[str]:
    """A price model's row of the caching-rules table."""
    rates = entry.rates
    provider, _ = split_ref(model)
    if rates is None:
        return [model, "no rates recorded"]
    base = rates.input_mtok
    step = "none in the table" if entry.price_override is None else "none (override)"
    if rates.tier_start is not None:
        crossed = "crossed" if prompt > rates.tier_start else "not crossed"
        step = f"above {rates.tier_start:,} tokens ({crossed} by {prompt:,})"
    return [
        model,
        _times(rates.cache_read_mtok, base),
        _times(rates.cache_write_mtok, base) if rates.cache_write_mtok else "no premium",
        _times(rates.cache_write_1h_mtok, base),
        step,
        _storage(entry, provider),
        _rules(entry, provider),
    ]


def caching_rules(s: ReportSummary) -> Section | None:
    """One row per price model: read and write rates as multiples of input, the tier
    threshold and whether the long-context prompt crosses it, and what the table
    lacks."""
    if not s.costs.models:
        return None
    prompt = s.costs.long_context_prompt_tokens or 0
    ttl = s.costs.cache_ttl_minutes
    table = [
        [
            "price model",
            "cache read",
            "cache write (5 min)",
            "cache write (1 h)",
            "price step",
            "explicit-cache storage",
            "rules and gaps",
        ]
    ]
    table += [_row(model, entry, prompt) for model, entry in s.costs.models.items()]
    used = "1-hour" if ttl >= 60 else "5-minute"
    paragraphs = [
        f"Rates are the price table's ({s.assumptions.price_source}) at this corpus's "
        f"long-context prompt of {fmt(prompt, 'int')} tokens, as multiples of the input "
        f"rate. The projection assumes a {ttl:g}-minute cache lifetime, so writes are "
        f"priced at the {used} rate where the table has one; a price step applies per "
        "request, as providers bill it.",
        *override_lines(s),
    ]
    sources = {m.storage_source for m in s.costs.models.values() if m.storage_source}
    if CACHE_STORAGE_SOURCE in sources:
        paragraphs.append(
            "Explicit-cache storage is not in the price table; the storage rates marked "
            f'"kb\'s table" come from {CACHE_STORAGE_SOURCE}.'
        )
    overridden = sorted(sources - {CACHE_STORAGE_SOURCE})
    if overridden:
        paragraphs.append(f'The storage rates marked "override" come from {"; ".join(overridden)}.')
    return Section("Caching rules behind the projection", paragraphs, table)


def storage_lines(s: ReportSummary) -> list[str]:
    """One line per price model whose explicit cache is billed for storage: what a
    month stores at the assumed volume, per mode that sends the corpus prefix."""
    volume = s.costs.monthly_questions
    lines = []
    for model, entry in s.costs.models.items():
        rate = entry.storage_mtok_hour
        stored = {m: c for m, c in entry.modes.items() if c.cached_hours_per_month}
        if rate is None or not stored:
            continue
        parts = [
            f"{label(mode)} {fmt(c.monthly_storage_usd, 'usd')} ({c.cached_prefix_tokens:,} "
            f"tokens x {c.cached_hours_per_month:,.0f} h)"
            for mode, c in stored.items()
        ]
        lines.append(
            f"Storage on {model}: an explicit cache is billed ${rate:.2f} per million tokens "
            f"per hour kept; the rate is from {entry.storage_source}, not from genai-prices. "
            f"At {volume:,} questions a month the cached prefix is stored for one lifetime "
            f"after each cache write: {'; '.join(parts)} a month, included in 'with cache'."
        )
    return lines
