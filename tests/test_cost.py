"""Costs: hand-computed from an override file, and genai-prices lookups checked
against the library's own calculation and per-token rates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest

from kb.backends.cost import PRICE_SOURCE, estimate_cost, model_context_window
from kb.core.errors import SettingsError
from kb.core.models import Usage

# Prices change on dated steps; pin the day so the comparison is stable.
AT = datetime(2026, 11, 20, tzinfo=UTC)


def write_overrides(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.fast
def test_override_prices_each_kind_of_token(tmp_path: Path) -> None:
    path = write_overrides(
        tmp_path,
        {
            "openai:my-model": {
                "input_mtok": 2.0,
                "cache_read_mtok": 0.5,
                "cache_write_mtok": 2.5,
                "output_mtok": 8.0,
            }
        },
    )
    usage = Usage(
        input_tokens=1_000, cache_read_tokens=3_000, cache_write_tokens=2_000, output_tokens=500
    )
    # 1,000 x $2 + 3,000 x $0.50 + 2,000 x $2.50 + 500 x $8 = $12,500 per million tokens
    assert estimate_cost("openai:my-model", usage, overrides=path) == pytest.approx(0.0125)
    assert estimate_cost(("openai", "my-model"), usage, overrides=path) == pytest.approx(0.0125)
    assert estimate_cost("openai:my-model", usage) is None  # unknown without the file


@pytest.mark.fast
def test_override_wins_over_the_table_and_cache_rates_default_to_input(tmp_path: Path) -> None:
    path = write_overrides(
        tmp_path, {"anthropic:claude-sonnet-4-5": {"input_mtok": 1, "output_mtok": 4}}
    )
    usage = Usage(
        input_tokens=100, cache_read_tokens=900, cache_write_tokens=1_000, output_tokens=250
    )
    # (100 + 900 + 1,000) x $1 + 250 x $4 = $3,000 per million tokens
    assert estimate_cost("anthropic:claude-sonnet-4-5", usage, overrides=path) == pytest.approx(
        0.003
    )
    assert estimate_cost("anthropic:claude-sonnet-4-5", usage, at=AT) != pytest.approx(0.003)


def _library(model: str, provider: str, usage: Usage) -> genai_prices.types.PriceCalculation:
    """genai-prices' own calculation, in its convention: input counts cached tokens too."""
    return genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
        ),
        model,
        provider_id=provider,
        genai_request_timestamp=AT,
    )


def flat(library: genai_prices.types.PriceCalculation, kind: str) -> Decimal:
    """The model's flat rate for one kind of token (these models have no price tiers)."""
    rate = getattr(library.model_price, kind)
    assert isinstance(rate, Decimal)
    return rate


@pytest.mark.fast
def test_openai_cache_reads_priced_as_the_library_prices_them() -> None:
    usage = Usage(input_tokens=1_200, cache_read_tokens=40_000, output_tokens=300)
    library = _library("gpt-4o-mini", "openai", usage)

    cost = estimate_cost("openai:gpt-4o-mini", usage, at=AT)

    assert cost == float(library.total_price)
    per_million = (
        1_200 * flat(library, "input_mtok")
        + 40_000 * flat(library, "cache_read_mtok")
        + 300 * flat(library, "output_mtok")
    )
    assert cost == pytest.approx(float(per_million) / 1_000_000)
    uncached = estimate_cost(
        "openai:gpt-4o-mini", Usage(input_tokens=41_200, output_tokens=300), at=AT
    )
    assert uncached is not None and cost < uncached


@pytest.mark.fast
def test_anthropic_cache_writes_priced_as_the_library_prices_them() -> None:
    usage = Usage(input_tokens=14, cache_write_tokens=2_188, output_tokens=13)
    library = _library("claude-haiku-4-5", "anthropic", usage)

    cost = estimate_cost("anthropic:claude-haiku-4-5", usage, at=AT)

    assert cost == float(library.total_price)
    per_million = (
        14 * flat(library, "input_mtok")
        + 2_188 * flat(library, "cache_write_mtok")
        + 13 * flat(library, "output_mtok")
    )
    assert cost == pytest.approx(float(per_million) / 1_000_000)


@pytest.mark.fast
def test_free_backends_and_unknown_models_have_no_price() -> None:
    usage = Usage(input_tokens=1_000, output_tokens=100)
    assert estimate_cost("extractive", usage) is None
    assert estimate_cost("local:SmolLM2-135M-Instruct.Q4_1", usage) is None
    assert estimate_cost("openai:no-such-model-anywhere", usage) is None
    assert estimate_cost("nobody:gpt-4o", usage) is None
    assert model_context_window("openai", "no-such-model-anywhere") is None
    assert genai_prices.__version__ in PRICE_SOURCE


@pytest.mark.fast
@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("{not json", "not readable JSON"),
        (json.dumps(["openai:x"]), "must map"),
        (json.dumps({"openai:x": {"input_mtok": 1}}), "needs at least input_mtok and output_mtok"),
        (json.dumps({"openai:x": {"input_mtok": 1, "output_mtok": 2, "x": 3}}), "unknown keys"),
        (json.dumps({"openai:x": {"input_mtok": -1, "output_mtok": 2}}), "negative"),
    ],
)
def test_unusable_override_file_is_a_settings_error(
    tmp_path: Path, content: str, complaint: str
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SettingsError, match=complaint) as caught:
        estimate_cost("openai:x", Usage(input_tokens=1), overrides=path)
    assert str(path) in caught.value.message


@pytest.mark.fast
def test_missing_override_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="KB_PRICE_OVERRIDES: cannot read"):
        estimate_cost("openai:x", Usage(input_tokens=1), overrides=tmp_path / "absent.json")
