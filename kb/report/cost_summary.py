"""The summary's cost projections: a CostCurve per price model and mode from the
token mixes the run measured, and the CostSummary at the assumed monthly volume with
the break-even volumes between the paths."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from kb.backends.cost import (
    cache_storage_rate,
    caching_rates,
    estimate_cost,
    model_context_window,
    one_hour_write_extra,
    override_source,
    price_override,
)
from kb.core.errors import SettingsError
from kb.core.models import Usage
from kb.report.options import ReportOptions
from kb.report.projection import BreakEven, CostCurve, TokenMix, break_even, cost_curve
from kb.report.rows import AnswerRow
from kb.report.summary import (
    BreakEvenSummary,
    CostSummary,
    ModeCost,
    ModelCosts,
    ModelRates,
)

if TYPE_CHECKING:
    from kb.service import KnowledgeBase

ONE_HOUR = 60.0  # minutes: from this cache lifetime on, writes are priced at 1-hour rates


def price_models(kb: KnowledgeBase, options: ReportOptions, priced: bool) -> list[str]:
    """The models to project costs on: the run's own backend first when it is priced."""
    models = list(options.price_models)
    if priced and kb.backend.name not in models:
        models.insert(0, kb.backend.name)
    return models


def check_price_models(models: Sequence[str], overrides: Path | None) -> None:
    """Raise SettingsError, before a run, for an unreadable override file or a price
    model that neither the override file nor the price table prices."""
    unknown = [m for m in models if caching_rates(m, 0, overrides=overrides) is None]
    if unknown:
        raise SettingsError(
            f"No price is known for {', '.join(map(repr, unknown))}; pick a model "
            "genai-prices knows (e.g. openai:gpt-4.1-mini) or add it to KB_PRICE_OVERRIDES."
        )


def cost_curves(
    price_models: Sequence[str],
    options: ReportOptions,
    rows: Sequence[AnswerRow],
    overrides: Path | None = None,
) -> dict[str, dict[str, CostCurve]]:
    """A CostCurve per price model and mode, from the token mixes the modes used,
    priced as the service prices answers (the `overrides` file, KB_PRICE_OVERRIDES,
    before the price table); on a model whose explicit cache is billed for storage,
    each cache lifetime stores the prefix (`kb.backends.cost.cache_storage_rate`)."""

    def pricer(model: str, usage: Usage) -> float | None:
        cost = estimate_cost(model, usage, overrides=overrides)
        if cost is None or options.cache_ttl_minutes < ONE_HOUR:
            return cost
        # A cache kept an hour costs more to write.
        return cost + one_hour_write_extra(model, usage, overrides=overrides)

    curves: dict[str, dict[str, CostCurve]] = {}
    for model in price_models:
        curves[model] = {}
        storage = cache_storage_rate(model, overrides=overrides)
        for mode in options.modes:
            mixes = [TokenMix.from_usage(r.usage) for r in rows if r.mode == mode and r.ok]
            if mixes:
                curves[model][mode] = cost_curve(
                    mode, model, mixes, pricer, options.cache_ttl_minutes, storage
                )
    return curves


def cost_summary(
    options: ReportOptions,
    curves: dict[str, dict[str, CostCurve]],
    rows: Sequence[AnswerRow],
    overrides: Path | None = None,
) -> CostSummary:
    """The projections at the assumed volume, with each model's rates at this corpus's
    long-context prompt size and where they come from (`overrides` or the table)."""
    volume, ttl = options.monthly_questions, options.cache_ttl_minutes
    prompts = [
        r.usage.total_input_tokens
        for r in rows
        if r.ok and r.path == "long_context" and not r.fallback
    ]
    prompt = max(prompts, default=None)
    models = {}
    for model, by_mode in curves.items():
        provider, _, name = model.partition(":")
        storage = cache_storage_rate(model, overrides=overrides)
        overridden = overrides is not None and price_override(model, overrides) is not None
        models[model] = ModelCosts(
            modes={mode: _mode_cost(curve, volume, ttl) for mode, curve in by_mode.items()},
            break_even={
                key: BreakEvenSummary(
                    volumes_per_month=[round(v) for v in found.volumes],
                    cheaper_side=list(found.sides),
                    cheaper_at_low_volume=found.cheaper_at_low,
                    cheaper_at_high_volume=found.cheaper_at_high,
                    explanation=found.explain(),
                )
                for key, found in _break_evens(by_mode).items()
            },
            context_window=model_context_window(provider, name),
            storage_mtok_hour=float(storage.mtok_hour) if storage else None,
            storage_source=storage.source if storage else None,
            rates=model_rates(model, prompt or 0, overrides),
            price_override=override_source(overrides) if overrides and overridden else None,
        )
    any_curve = next((c for by_mode in curves.values() for c in by_mode.values()), None)
    return CostSummary(
        projection=True,
        monthly_questions=volume,
        cache_ttl_minutes=options.cache_ttl_minutes,
        cache_lifetimes_per_month=round(any_curve.windows_per_month, 1) if any_curve else None,
        long_context_prompt_tokens=prompt,
        models=models,
    )


def model_rates(model: str, prompt_tokens: int, overrides: Path | None = None) -> ModelRates | None:
    """The rates `model` is priced at for a request of `prompt_tokens` (the override
    file's entry, else the price table's), as the summary records them."""
    rates = caching_rates(model, prompt_tokens, overrides=overrides)

    def rate(value: Decimal | None) -> float | None:
        return None if value is None else float(value)

    if rates is None:
        return None
    return ModelRates(
        input_mtok=float(rates.input_mtok),
        cache_read_mtok=rate(rates.cache_read_mtok),
        cache_write_mtok=rate(rates.cache_write_mtok),
        cache_write_1h_mtok=rate(rates.cache_write_1h_mtok),
        tier_start=rates.tier_start,
        source=rates.source,
    )


def _mode_cost(curve: CostCurve, volume: int, ttl_minutes: float) -> ModeCost:
    stored = curve.storage_per_lifetime > 0
    return ModeCost(
        per_1000_without_cache_usd=round(curve.per_1000(volume, cached=False), 4),
        per_1000_with_cache_usd=round(curve.per_1000(volume, cached=True), 4),
        per_1000_warm_cache_usd=round(1000 * curve.warm, 4),
        monthly_with_cache_usd=round(curve.monthly(volume, cached=True), 2),
        monthly_without_cache_usd=round(curve.monthly(volume, cached=False), 2),
        prefix_share=round(curve.prefix_share, 4),
        write_surcharge_usd=round(curve.write_surcharge, 6),
        monthly_storage_usd=round(curve.monthly_storage(volume), 2),
        cached_prefix_tokens=round(curve.prefix_tokens) if stored else 0,
        cached_hours_per_month=round(curve.writes(volume) * ttl_minutes / 60, 1) if stored else 0,
    )


def _break_evens(by_mode: dict[str, CostCurve]) -> dict[str, BreakEven]:
    """Cached long context against retrieval, and long context with against without
    caching (the volume from which caching pays)."""
    found: dict[str, BreakEven] = {}
    lc, rag = by_mode.get("long_context"), by_mode.get("rag")
    if lc is not None and rag is not None:
        found["long_context_cached_vs_rag"] = break_even(
            lc.monthly, rag.monthly, [lc.kink, rag.kink], ("long context (cached)", "retrieval")
        )
        found["long_context_uncached_vs_rag"] = break_even(
            lambda v: lc.monthly(v, cached=False),
            lambda v: rag.monthly(v, cached=False),
            [],
            ("long context (no cache)", "retrieval"),
        )
    if lc is not None:
        found["long_context_cached_vs_uncached"] = break_even(
            lc.monthly,
            lambda v: lc.monthly(v, cached=False),
            [lc.kink],
            ("with caching", "without caching"),
        )
    return found
