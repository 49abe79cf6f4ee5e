"""The report's caching-rules section: for every price model, the rules its cost
projection follows at this corpus's long-context prompt size, from the price table
(genai-prices), and where the table lacks a rule the provider applies.

Provider rules the projection follows (late 2026): Anthropic bills a cache write at
1.25x input for a 5-minute lifetime and 2x for 1 hour, reads at 0.1x; OpenAI caches
automatically from 1,024 tokens with no write premium (the cached-input discount
depends on the model; the longer retention option costs no more); Gemini's implicit
caching discounts reads, while an explicit cache is also charged for storage per
token-hour; some models step their prices up above a prompt size (Gemini above 200k
tokens, some OpenAI models above 272k).
"""

from __future__ import annotations

from decimal import Decimal

from kb.backends.cost import caching_rates, split_ref
from kb.report.format import Section, fmt
from kb.report.summary import ReportSummary

PROVIDER_NOTES = {
    "anthropic": "explicit cache_control; no storage charge",
    "openai": "automatic from 1,024 tokens, no write premium; longer retention at no extra price",
    "google": "implicit caching priced; an explicit cache's storage per token-hour is not in "
    "the table, so not projected",
}


def _times(rate: Decimal | None, base: Decimal) -> str:
    return "–" if rate is None or not base else f"{float(rate / base):.2f}x"


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
            "rules and gaps",
        ]
    ]
    for model in s.costs.models:
        rates = caching_rates(model, prompt)
        provider, _ = split_ref(model)
        if rates is None:
            table.append([model, "not in the table (an override prices it as given)"])
            continue
        base = rates.input_mtok
        step = "none in the table"
        if rates.tier_start is not None:
            crossed = "crossed" if prompt > rates.tier_start else "not crossed"
            step = f"above {rates.tier_start:,} tokens ({crossed} by {prompt:,})"
        table.append(
            [
                model,
                _times(rates.cache_read_mtok, base),
                _times(rates.cache_write_mtok, base) if rates.cache_write_mtok else "no premium",
                _times(rates.cache_write_1h_mtok, base),
                step,
                PROVIDER_NOTES.get(provider, "as the table lists"),
            ]
        )
    used = "1-hour" if ttl >= 60 else "5-minute"
    return Section(
        "Caching rules behind the projection",
        [
            f"Rates are the price table's ({s.assumptions.price_source}) at this corpus's "
            f"long-context prompt of {fmt(prompt, 'int')} tokens, as multiples of the input "
            f"rate. The projection assumes a {ttl:g}-minute cache lifetime, so writes are "
            f"priced at the {used} rate where the table has one; a price step applies per "
            "request, as providers bill it."
        ],
        table,
    )
