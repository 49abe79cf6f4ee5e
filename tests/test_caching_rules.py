"""The caching rules behind the cost projection, read from the bundled price table:
Anthropic's write premiums (1.25x for 5 minutes, 2x for 1 hour) and 0.1x reads,
price steps above a prompt size (Gemini above 200k, some OpenAI models above 272k),
Gemini's explicit-cache storage per token-hour (from kb's own rate table, which the
price table lacks), and the report's sections that state them."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from kb.backends.cost import (
    CACHE_STORAGE_SOURCE,
    cache_storage_rate,
    caching_rates,
    estimate_cost,
    one_hour_write_extra,
)
from kb.core.models import Usage
from kb.report.caching_rules import PROVIDER_NOTES, caching_rules, storage_lines
from kb.report.cost_summary import cost_curves, cost_summary
from kb.report.markdown import render_markdown
from kb.report.options import ReportOptions
from kb.report.rows import AnswerRow
from kb.report.summary import ReportSummary
from tests.test_report_render import _summary

pytestmark = pytest.mark.fast


def test_anthropic_write_premiums_and_read_discount_come_from_the_table() -> None:
    rates = caching_rates("anthropic:claude-sonnet-4-5", 20_000)
    assert rates is not None
    assert rates.cache_write_mtok == Decimal("1.25") * rates.input_mtok
    assert rates.cache_write_1h_mtok == 2 * rates.input_mtok
    assert rates.cache_read_mtok == Decimal("0.1") * rates.input_mtok
    usage = Usage(input_tokens=100, cache_write_tokens=20_000, output_tokens=10)
    five_minutes = estimate_cost("anthropic:claude-sonnet-4-5", usage)
    extra = one_hour_write_extra("anthropic:claude-sonnet-4-5", usage)
    assert five_minutes is not None
    # 20,000 written tokens at 0.75x input more: $3/MTok x 0.75 x 0.02 MTok.
    assert extra == pytest.approx(20_000 * 0.75 * float(rates.input_mtok) / 1e6)
    assert one_hour_write_extra("openai:gpt-4.1-mini", usage) == 0.0  # no 1-hour rate


def test_prices_step_up_above_the_tables_thresholds() -> None:
    small = caching_rates("google:gemini-2.5-pro", 100_000)
    large = caching_rates("google:gemini-2.5-pro", 250_000)
    assert small is not None and large is not None
    assert small.tier_start == 200_000 and large.input_mtok == 2 * small.input_mtok
    gpt = caching_rates("openai:gpt-5.4", 300_000)
    assert gpt is not None and gpt.tier_start == 272_000
    flash = caching_rates("google:gemini-2.5-flash", 300_000)
    assert flash is not None and flash.tier_start is None
    assert caching_rates("nobody:no-model", 10) is None


def test_the_report_states_the_rules_and_what_the_table_lacks() -> None:
    section = caching_rules(_summary())
    assert section is not None
    assert section.table[1] == [
        "openai:gpt-4.1-mini",
        "0.25x",
        "no premium",
        "–",
        "none in the table",
        "none billed",
        "automatic from 1,024 tokens, no write premium; longer retention at no extra price",
    ]
    text = render_markdown(_summary(), [])
    assert "## Caching rules behind the projection" in text
    assert "5-minute cache lifetime, so writes are priced at the 5-minute rate" in text


FLASH, PRO, GPT = "google:gemini-2.5-flash", "google:gemini-2.5-pro", "openai:gpt-4.1-mini"
UNRATED = "google:gemini-2.0-flash"  # in the price table, not in kb's storage table
PREFIX = 16_000  # the cached corpus prefix of every long-context question below


def test_explicit_cache_storage_rates_come_from_kbs_table_by_the_models_canonical_id() -> None:
    flash, pro = (
        cache_storage_rate(FLASH),
        cache_storage_rate("google:gemini-2.5-pro-preview-06-05"),
    )
    assert flash is not None and pro is not None
    assert (flash.mtok_hour, pro.mtok_hour) == (Decimal("1.00"), Decimal("4.50"))
    assert flash.source == CACHE_STORAGE_SOURCE and "kb's storage table" in flash.source
    assert flash.cost(PREFIX, 720) == pytest.approx(11.52)  # 16k tokens kept a 30-day month
    # No storage billed (Anthropic, OpenAI), no rate known, or no such model.
    for model in ("anthropic:claude-sonnet-4-5", GPT, UNRATED, "nobody:x"):
        assert cache_storage_rate(model) is None


def _rows() -> list[AnswerRow]:
    def row(mode: str, n: int, usage: Usage) -> AnswerRow:
        path = "rag" if mode == "rag" else "long_context"
        return AnswerRow(mode, f"q{n}", "?", ["a"], False, False, ["d"], 0, path=path, usage=usage)

    prefix = Usage(input_tokens=300, cache_read_tokens=PREFIX, output_tokens=40)
    passages = Usage(input_tokens=2_000, output_tokens=40)
    return [row("long_context", n, prefix) for n in range(5)] + [
        row("rag", n, passages) for n in range(5)
    ]


def _storage_summary(volume: int, ttl: float) -> ReportSummary:
    options = ReportOptions(
        Path("q.jsonl"),
        modes=("long_context", "rag"),
        price_models=(FLASH, PRO, GPT, UNRATED),
        cache_ttl_minutes=ttl,
        monthly_questions=volume,
    )
    costs = cost_summary(options, cost_curves(options.price_models, options, _rows()), _rows())
    return _summary(costs=costs, assumptions=replace(_summary().assumptions, price_source="t"))


def test_a_gemini_projection_adds_storage_for_every_cache_lifetime_of_the_month() -> None:
    options = ReportOptions(Path("q.jsonl"), modes=("long_context", "rag"), cache_ttl_minutes=60)
    curves = cost_curves([FLASH, GPT], options, _rows())
    lc = curves[FLASH]["long_context"]
    # One lifetime (60 min) stores the 16k prefix for an hour at $1.00 per 1M token-hours.
    assert lc.storage_per_lifetime == pytest.approx(0.016) and lc.prefix_tokens == PREFIX
    # Below 720 prefix questions a month every one writes (and stores) a cache; above,
    # the month's 720 lifetimes do: storage = prefix tokens x hours kept x rate.
    assert lc.monthly_storage(100) == pytest.approx(100 * 0.016)
    assert lc.monthly_storage(100_000) == pytest.approx(720 * 0.016)
    no_storage = replace(lc, storage_per_lifetime=0.0)
    assert lc.monthly(100_000) - no_storage.monthly(100_000) == pytest.approx(11.52)
    assert lc.monthly(100_000, cached=False) == no_storage.monthly(100_000, cached=False)
    assert curves[FLASH]["rag"].monthly_storage(100_000) == 0.0  # no prefix, no cache
    assert curves[GPT]["long_context"].storage_per_lifetime == 0.0  # OpenAI bills none

    summary = _storage_summary(100_000, 60)
    flash, pro = summary.costs.models[FLASH], summary.costs.models[PRO]
    assert (flash.storage_mtok_hour, flash.storage_source) == (1.0, CACHE_STORAGE_SOURCE)
    assert flash.modes["long_context"].monthly_storage_usd == 11.52
    assert pro.modes["long_context"].monthly_storage_usd == 51.84  # 16k x 720 h x $4.50
    assert (flash.modes["long_context"].cached_hours_per_month, flash.modes["rag"]) == (
        720.0,
        replace(flash.modes["rag"], monthly_storage_usd=0.0, cached_hours_per_month=0.0),
    )
    assert summary.costs.models[GPT].storage_mtok_hour is None


def test_the_report_states_the_storage_rate_its_source_and_what_a_month_stores() -> None:
    summary = _storage_summary(1_000, 5)  # 1,000 lifetimes of 5 minutes: 83.3 hours
    section = caching_rules(summary)
    assert section is not None
    assert section.table[0][5] == "explicit-cache storage"
    assert section.table[1] == [
        FLASH,
        "0.10x",
        "no premium",
        "–",
        "none in the table",
        "$1.00 per 1M token-hours (kb's table)",
        PROVIDER_NOTES["google"],
    ]
    assert [row[5] for row in section.table[3:]] == [
        "none billed",
        "billed, but no rate known for this model: not projected",
    ]
    assert section.paragraphs[1] == (
        "Explicit-cache storage is not in the price table; the storage rates marked "
        f'"kb\'s table" come from {CACHE_STORAGE_SOURCE}.'
    )
    assert storage_lines(summary) == [
        f"Storage on {model}: an explicit cache is billed ${rate} per million tokens per hour "
        f"kept; the rate is from {CACHE_STORAGE_SOURCE}, not from genai-prices. At 1,000 "
        "questions a month the cached prefix is stored for one lifetime after each cache "
        f"write: long context {cost} (16,000 tokens x 83 h) a month, included in 'with cache'."
        for model, rate, cost in ((FLASH, "1.00", "$1.33"), (PRO, "4.50", "$6.00"))
    ]
    text = render_markdown(summary, [])
    assert storage_lines(summary)[0] in text
    assert "'with cache' assumes an explicit cache kept for one lifetime" in text
