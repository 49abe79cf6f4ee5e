"""The report's cost projection prices models as the service prices its answers: a
KB_PRICE_OVERRIDES entry wins over genai-prices for every rate the projection reads
(input, output, cache read and write, the 1-hour write, explicit-cache storage), and
the report says which models an override priced."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from kb.backends.cost import (
    CACHE_STORAGE_SOURCE,
    cache_storage_rate,
    caching_rates,
    estimate_cost,
    one_hour_write_extra,
)
from kb.core.errors import SettingsError
from kb.core.models import Usage
from kb.core.settings import load_settings
from kb.report import ReportOptions
from kb.report.caching_rules import PROVIDER_NOTES, caching_rules, override_lines
from kb.report.cost_summary import check_price_models, cost_curves, cost_summary
from kb.report.markdown import render_markdown
from kb.report.metrics import mean
from kb.report.rows import AnswerRow
from kb.report.runner import run_report
from kb.report.summary import ReportSummary
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from tests.conftest import write_corpus
from tests.scripted import ScriptedBackend
from tests.test_caching_rules import PREFIX, _rows
from tests.test_report_render import _summary

HOUSE = "custom:house-model"  # a model genai-prices does not know
FLASH, SONNET = "google:gemini-2.5-flash", "anthropic:claude-sonnet-4-5"
SOURCE = "KB_PRICE_OVERRIDES (prices.json)"
PRICES = {
    HOUSE: {
        "input_mtok": 2,
        "output_mtok": 8,
        "cache_read_mtok": 0.5,
        "cache_write_mtok": 2.5,
        "storage_mtok_hour": 3,
    },
    # Known models, priced otherwise than the table: a cache write defaults to input.
    FLASH: {"input_mtok": 0.5, "output_mtok": 2, "cache_read_mtok": 0.05, "storage_mtok_hour": 2},
    SONNET: {
        "input_mtok": 1,
        "output_mtok": 5,
        "cache_read_mtok": 0.1,
        "cache_write_mtok": 1.25,
        "cache_write_1h_mtok": 2,
    },
}


@pytest.fixture
def prices(tmp_path: Path) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(PRICES), "utf-8")
    return path


def _projection(
    models: tuple[str, ...], overrides: Path | None, ttl: float = 5, volume: int = 1_000
) -> ReportSummary:
    options = ReportOptions(
        Path("q.jsonl"),
        modes=("long_context", "rag"),
        price_models=models,
        cache_ttl_minutes=ttl,
        monthly_questions=volume,
    )
    rows: list[AnswerRow] = _rows()
    curves = cost_curves(options.price_models, options, rows, overrides)
    return _summary(costs=cost_summary(options, curves, rows, overrides))


@pytest.mark.fast
def test_every_rate_the_projection_reads_comes_from_an_override_first(prices: Path) -> None:
    assert caching_rates(HOUSE, 10) is None and cache_storage_rate(HOUSE) is None
    rates = caching_rates(HOUSE, 300_000, overrides=prices)
    assert rates is not None and rates.source == SOURCE and rates.tier_start is None
    assert (rates.input_mtok, rates.cache_read_mtok, rates.cache_write_mtok) == (2, 0.5, 2.5)
    storage = cache_storage_rate(HOUSE, overrides=prices)
    assert storage is not None and (storage.mtok_hour, storage.source) == (3, SOURCE)
    flash = cache_storage_rate(FLASH, overrides=prices)
    assert flash is not None and (flash.mtok_hour, flash.source) == (2, SOURCE)
    # An override without a storage rate leaves storage to kb's table.
    pro = cache_storage_rate("google:gemini-2.5-pro", overrides=prices)
    assert pro is not None and pro.source == CACHE_STORAGE_SOURCE
    write = Usage(input_tokens=300, cache_write_tokens=PREFIX, output_tokens=40)
    assert one_hour_write_extra(SONNET, write, overrides=prices) == pytest.approx(0.012)
    assert one_hour_write_extra(FLASH, write, overrides=prices) == 0.0  # no 1-hour rate given
    # The service's own cost of an answer reads the same entry.
    assert estimate_cost(HOUSE, write, overrides=prices) == pytest.approx(0.04092)


@pytest.mark.fast
def test_a_model_only_an_override_prices_is_projected_with_its_figures(prices: Path) -> None:
    with pytest.raises(SettingsError, match="add it to KB_PRICE_OVERRIDES"):
        _projection((HOUSE,), None)
    with pytest.raises(SettingsError, match="'custom:house-model'"):
        check_price_models([FLASH, HOUSE], None)
    check_price_models([FLASH, HOUSE], prices)

    house = _projection((HOUSE,), prices).costs.models[HOUSE]
    lc, rag = house.modes["long_context"], house.modes["rag"]
    # Read: 300 x $2 + 16,000 x $0.50 + 40 x $8 per million; written: the prefix at $2.50;
    # uncached: the prefix at $2; retrieval: 2,000 x $2 + 40 x $8.
    assert (lc.per_1000_warm_cache_usd, lc.per_1000_without_cache_usd) == (8.92, 32.92)
    assert lc.write_surcharge_usd == 0.032 and rag.per_1000_without_cache_usd == 4.32
    # 1,000 writes a month, each storing 16,000 tokens for 5 minutes at $3 per 1M token-hours.
    assert lc.monthly_storage_usd == 4.0 and lc.monthly_with_cache_usd == 44.92
    assert (house.price_override, house.storage_mtok_hour, house.storage_source) == (
        SOURCE,
        3.0,
        SOURCE,
    )
    assert house.rates is not None and (house.rates.input_mtok, house.rates.source) == (2, SOURCE)


@pytest.mark.fast
def test_an_override_of_a_known_model_changes_its_projection(prices: Path) -> None:
    table = _projection((FLASH, SONNET), None, ttl=60).costs.models
    ours = _projection((FLASH, SONNET), prices, ttl=60).costs.models
    # Flash read: 300 x $0.50 + 16,000 x $0.05 + 40 x $2 per million (the table: $0.67).
    assert ours[FLASH].modes["long_context"].per_1000_warm_cache_usd == 1.03
    assert table[FLASH].modes["long_context"].per_1000_warm_cache_usd == 0.67
    assert (ours[FLASH].storage_mtok_hour, table[FLASH].storage_mtok_hour) == (2.0, 1.0)
    assert ours[FLASH].modes["long_context"].monthly_storage_usd == 23.04  # 16k x 720 h x $2
    # A cache kept an hour is written at the override's 1-hour rate: 16,000 x ($2 - $0.10).
    assert ours[SONNET].modes["long_context"].write_surcharge_usd == 0.0304
    assert table[SONNET].modes["long_context"] != ours[SONNET].modes["long_context"]
    assert (table[FLASH].price_override, ours[FLASH].price_override) == (None, SOURCE)


@pytest.mark.fast
def test_the_report_says_which_rates_an_override_gave(prices: Path) -> None:
    summary = _projection((HOUSE, FLASH, "google:gemini-2.5-pro"), prices)
    section = caching_rules(summary)
    assert section is not None
    assert section.table[1:3] == [
        [
            HOUSE,
            "0.25x",
            "1.25x",
            "–",
            "none (override)",
            "$3.00 per 1M token-hours (override)",
            f"prices from {SOURCE}, as given",
        ],
        [
            FLASH,
            "0.10x",
            "1.00x",
            "–",
            "none (override)",
            "$2.00 per 1M token-hours (override)",
            f"prices from {SOURCE}, as given; {PROVIDER_NOTES['google']}",
        ],
    ]
    assert section.table[3][5] == "$4.50 per 1M token-hours (kb's table)"
    line = (
        f"Prices of {HOUSE}, {FLASH} come from {SOURCE}, not from genai-prices: every rate "
        "of theirs (input, output, cache read and write, and storage where it gives one) is "
        "the override's, as in the service's own answer costs."
    )
    assert override_lines(summary) == [line]
    assert section.paragraphs[1:] == [
        line,
        "Explicit-cache storage is not in the price table; the storage rates marked "
        f'"kb\'s table" come from {CACHE_STORAGE_SOURCE}.',
        f'The storage rates marked "override" come from {SOURCE}.',
    ]
    text = render_markdown(summary, [])
    assert text.count(line) == 2  # the cost section and the caching rules
    assert f"the rate is from {SOURCE}, not from genai-prices" in text
    assert override_lines(_projection((FLASH,), None)) == []


DOCS = {
    "deploys.md": "# Deploys\n\nDeploys go out on Tuesdays. A rollback takes 5 minutes.",
    "travel.md": "# Travel\n\nTrain travel is preferred for trips under 600 km.",
}
QUESTION = {"qid": "day", "question": "When do deploys go out?", "answers": ["Tuesdays"]}


@pytest.mark.integration
def test_kb_report_prices_its_projection_with_the_settings_overrides(
    tmp_path: Path, embedder: Embedder, prices: Path
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", price_overrides=prices)
    run_ingest(settings, write_corpus(tmp_path / "docs", DOCS), embedder=embedder)
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps(QUESTION | {"gold_doc_ids": ["deploys.md"]}) + "\n")
    backend = ScriptedBackend(lambda _: "On Tuesdays [1].")
    options = ReportOptions(questions, modes=("rag",), price_models=(HOUSE,), threshold_sweep=False)
    with KnowledgeBase(settings, backend=backend, embedder=embedder) as kb:
        result = run_report(kb, options)
        asked = len(backend.prompts)
        with pytest.raises(SettingsError, match="'custom:nobody'"):
            run_report(kb, replace(options, price_models=(HOUSE, "custom:nobody")))
        assert len(backend.prompts) == asked  # refused before any question
    house = result.summary.costs.models[HOUSE]
    assert house.price_override == SOURCE
    usages = [r.usage for r in result.rows if isinstance(r, AnswerRow)]
    expected = mean(estimate_cost(HOUSE, u, overrides=prices) for u in usages)
    assert expected is not None and expected > 0
    assert house.modes["rag"].per_1000_warm_cache_usd == round(1000 * expected, 4)
    assert f"Prices of {HOUSE} come from {SOURCE}" in render_markdown(result.summary, [])
