"""What an answer costs, in US dollars, from the tokens the provider reported.

Prices come from `genai-prices` (pydantic's maintained table of provider prices,
bundled with the package and never fetched at run time: its `UpdatePrices`
downloader is not used). The locked copy is genai-prices 0.2.5 (requirements.lock);
its bundled data carries no build date of its own, and the newest dated price change
it records that was in effect on 2026-12-07 is 2026-12-01 (it also holds changes
scheduled for later dates, which `calc_price` applies from their start date).
`PRICE_SOURCE` names the version at run time.

A user can override or add prices with a JSON file (`KB_PRICE_OVERRIDES`)::

    {"openai:gpt-4o-mini": {"input_mtok": 0.15, "cache_read_mtok": 0.075,
                            "cache_write_mtok": 0.15, "output_mtok": 0.6}}

in dollars per million tokens; an override takes precedence over the table, for the
service's cost of each answer and for every rate the report's projection reads
(`estimate_cost`, `caching_rates`, `one_hour_write_extra`, `cache_storage_rate`).
Two optional keys serve the projection: `cache_write_1h_mtok`, the write rate of a
cache kept an hour (Anthropic; without it such a write costs `cache_write_mtok`), and
`storage_mtok_hour`, an explicit cache's storage in dollars per million tokens per
hour kept (Gemini; without it kb's storage table below applies where it knows the
model). An overridden model has no price steps: its rates hold at every prompt size.
The `extractive` and `local` backends run on this machine and cost nothing, so
they have no price (`None`), as has a model neither source knows.

An explicit cache's storage, billed per token-hour (Gemini), has no unit in the table:
`cache_storage_rate` reads an override's `storage_mtok_hour`, else kb's own small table
of storage rates at the end of this module, which names its source and the date it was
checked.

Token conventions differ: `kb.core.models.Usage.input_tokens` counts only the
uncached input, while genai-prices wants `input_tokens` to be the total input
including cache reads and writes (its README, "Usage"); `estimate_cost` converts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import genai_prices
from genai_prices.data_snapshot import get_snapshot

from kb.core.errors import SettingsError
from kb.core.models import Usage

PRICE_SOURCE = f"genai-prices {genai_prices.__version__} (bundled price data)"
FREE_PROVIDERS = frozenset({"extractive", "local"})
PRICE_FIELDS = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok")
# Keys an override may add for the report's projection (see the module docstring).
PROJECTION_FIELDS = ("cache_write_1h_mtok", "storage_mtok_hour")
ALLOWED_FIELDS = PRICE_FIELDS + PROJECTION_FIELDS
OVERRIDE_SOURCE = "KB_PRICE_OVERRIDES"

ModelRef = str | tuple[str, str]


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per million tokens of each kind, as in an override file; the two
    projection rates are None when the file does not give them."""

    input_mtok: Decimal
    cache_read_mtok: Decimal
    cache_write_mtok: Decimal
    output_mtok: Decimal
    cache_write_1h_mtok: Decimal | None = None
    storage_mtok_hour: Decimal | None = None  # per million tokens per hour kept

    def cost(self, usage: Usage) -> Decimal:
        return (
            usage.input_tokens * self.input_mtok
            + usage.cache_read_tokens * self.cache_read_mtok
            + usage.cache_write_tokens * self.cache_write_mtok
            + usage.output_tokens * self.output_mtok
        ) / 1_000_000


def split_ref(model_ref: ModelRef) -> tuple[str, str]:
    """`"openai:gpt-4o"` or `("openai", "gpt-4o")` -> `("openai", "gpt-4o")`; a bare
    model name gets an empty provider (genai-prices then infers it)."""
    if isinstance(model_ref, tuple):
        return model_ref
    provider, sep, model = model_ref.strip().partition(":")
    if not sep:
        return ("", provider) if provider not in FREE_PROVIDERS else (provider, "")
    return provider, model


def load_price_overrides(path: Path | None) -> dict[str, Price]:
    """The override file as `{"provider:model": Price}`; `{}` when no file is set.

    Raises SettingsError naming the file and the entry when it cannot be used."""
    if path is None:
        return {}
    path = Path(path)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise SettingsError(f"KB_PRICE_OVERRIDES: cannot read {path}: {exc.strerror}") from exc
    return _parse_overrides(str(path), stamp)


@lru_cache(maxsize=8)
def _parse_overrides(path: str, _stamp: int) -> dict[str, Price]:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"KB_PRICE_OVERRIDES: {path} is not readable JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise SettingsError(f'KB_PRICE_OVERRIDES: {path} must map "provider:model" to prices')
    prices: dict[str, Price] = {}
    for ref, entry in raw.items():
        if not isinstance(entry, dict) or not {"input_mtok", "output_mtok"} <= entry.keys():
            raise SettingsError(
                f"KB_PRICE_OVERRIDES: {path}: {ref!r} needs at least input_mtok and output_mtok "
                f"(dollars per million tokens); allowed keys: {', '.join(ALLOWED_FIELDS)}"
            )
        unknown = entry.keys() - set(ALLOWED_FIELDS)
        if unknown:
            raise SettingsError(
                f"KB_PRICE_OVERRIDES: {path}: {ref!r} has unknown keys {sorted(unknown)}; "
                f"allowed: {', '.join(ALLOWED_FIELDS)}"
            )
        try:
            values = {key: Decimal(str(value)) for key, value in entry.items()}
        except ArithmeticError as exc:
            raise SettingsError(f"KB_PRICE_OVERRIDES: {path}: {ref!r} has a non-number") from exc
        if any(value < 0 for value in values.values()):
            raise SettingsError(f"KB_PRICE_OVERRIDES: {path}: {ref!r} has a negative price")
        # An unlisted cache rate is billed like plain input: no discount, no premium.
        values.setdefault("cache_read_mtok", values["input_mtok"])
        values.setdefault("cache_write_mtok", values["input_mtok"])
        provider, model = split_ref(ref)
        prices[f"{provider}:{model}"] = Price(**values)
    return prices


def price_override(model_ref: ModelRef, overrides: Path | None) -> Price | None:
    """The `overrides` file's entry for `model_ref`, or None (no file, no entry)."""
    provider, model = split_ref(model_ref)
    return load_price_overrides(overrides).get(f"{provider}:{model}")


def override_source(overrides: Path) -> str:
    """How the report names the override file as a price source (its name only: a
    committed report carries no path of the machine it was made on)."""
    return f"{OVERRIDE_SOURCE} ({Path(overrides).name})"


def estimate_cost(
    model_ref: ModelRef,
    usage: Usage,
    *,
    overrides: Path | None = None,
    at: datetime | None = None,
) -> float | None:
    """USD for one answer's `usage` on `model_ref` (`"provider:model"` or a tuple).

    An entry of the `overrides` file wins; then genai-prices, at the time `at`
    (default now: prices change on dated steps). `None` for the free local
    backends and for models neither source knows."""
    provider, model = split_ref(model_ref)
    override = price_override(model_ref, overrides)
    if override is not None:
        return float(override.cost(usage))
    if provider in FREE_PROVIDERS or not model:
        return None
    try:
        price = genai_prices.calc_price(
            genai_prices.Usage(
                input_tokens=usage.total_input_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                output_tokens=usage.output_tokens,
            ),
            model,
            provider_id=provider or None,
            genai_request_timestamp=at,
        )
    except LookupError:
        return None
    return float(price.total_price)


def model_context_window(provider: str, model: str) -> int | None:
    """The model's input window as genai-prices records it (`ModelInfo.context_window`),
    or None when the table does not know the model."""
    try:
        _, info = get_snapshot().find_provider_model(model, None, provider or None, None)
    except LookupError:
        return None
    return info.context_window


@dataclass(frozen=True, slots=True)
class CachingRates:
    """A model's per-million-token rates for one request size, from the price table
    or an override (`source` says which): what the projection's caching rules rest
    on. None where the source has no entry."""

    input_mtok: Decimal
    cache_read_mtok: Decimal | None
    cache_write_mtok: Decimal | None  # 5-minute lifetime (Anthropic), if priced apart
    cache_write_1h_mtok: Decimal | None  # 1-hour lifetime (Anthropic)
    tier_start: int | None  # input tokens above which the prices step up
    source: str = PRICE_SOURCE


def caching_rates(
    model_ref: ModelRef, input_tokens: int, *, overrides: Path | None = None
) -> CachingRates | None:
    """The rates for `model_ref` at a request of `input_tokens`: an entry of the
    `overrides` file as given (no price steps), else the table's (tiered prices
    resolved for that size); None when neither knows the model."""
    override = price_override(model_ref, overrides)
    if override is not None and overrides is not None:
        return CachingRates(
            input_mtok=override.input_mtok,
            cache_read_mtok=override.cache_read_mtok,
            cache_write_mtok=override.cache_write_mtok,
            cache_write_1h_mtok=override.cache_write_1h_mtok,
            tier_start=None,
            source=override_source(overrides),
        )
    provider, model = split_ref(model_ref)
    try:
        _, info = get_snapshot().find_provider_model(model, None, provider or None, None)
    except LookupError:
        return None
    prices = info.prices[-1].prices if isinstance(info.prices, list) else info.prices
    starts: list[int] = []

    def rate(name: str) -> Decimal | None:
        value = getattr(prices, name, None)
        if value is None or isinstance(value, Decimal | int | float):
            return None if value is None else Decimal(str(value))
        steps = [t for t in value.tiers if t.start < input_tokens]
        starts.extend(t.start for t in value.tiers)
        return Decimal(str(steps[-1].price if steps else value.base))

    input_rate = rate("input_mtok")
    if input_rate is None:
        return None
    return CachingRates(
        input_mtok=input_rate,
        cache_read_mtok=rate("cache_read_mtok"),
        cache_write_mtok=rate("cache_write_mtok"),
        cache_write_1h_mtok=rate("cache_write_1h_mtok"),
        tier_start=min(starts) if starts else None,
    )


def one_hour_write_extra(
    model_ref: ModelRef, usage: Usage, *, overrides: Path | None = None
) -> float:
    """What a cache write costs beyond the 5-minute write rate when the cache is kept
    for an hour (Anthropic: 2x input instead of 1.25x), from the same source as
    `caching_rates`; 0 where that source has no 1-hour rate."""
    if not usage.cache_write_tokens:
        return 0.0
    rates = caching_rates(model_ref, usage.total_input_tokens, overrides=overrides)
    if rates is None or rates.cache_write_1h_mtok is None or rates.cache_write_mtok is None:
        return 0.0
    extra = rates.cache_write_1h_mtok - rates.cache_write_mtok
    return float(usage.cache_write_tokens * extra / 1_000_000)


# ---- explicit-cache storage, which the price table has no unit for ---------------------

# Dollars per million tokens per hour an explicit cache is kept, by the canonical
# (provider, model) that genai-prices resolves a name to (so an alias such as
# gemini-2.5-pro-preview-06-05 finds gemini-2.5-pro). genai-prices 0.2.5 has no unit for
# storage (its Gemini entries say so in their price comments), so the rates are kept
# here; read them from the table once it has one. Source: Google's Gemini Developer API
# pricing page (https://ai.google.dev/gemini-api/docs/pricing, "Context caching price:
# ... / 1,000,000 tokens per hour (storage price)", Standard tier), checked 2026-12-07
# through quotations of it (2.5 Pro: Google's developer forum, discuss.ai.google.dev,
# threads on 2.5 Pro cache pricing; 2.5 Flash and Flash-Lite: the Gemini 2.5 model guide
# at hivebook.wiki); the page itself could not be fetched from here.
CACHE_STORAGE_MTOK_HOUR: dict[tuple[str, str], Decimal] = {
    ("google", "gemini-2.5-pro"): Decimal("4.50"),
    ("google", "gemini-2.5-flash"): Decimal("1.00"),
    ("google", "gemini-2.5-flash-lite"): Decimal("1.00"),
}
CACHE_STORAGE_SOURCE = "kb's storage table (Gemini API pricing page, checked 2026-12-07)"
# Providers whose explicit caches are billed for the hours they are kept.
STORAGE_BILLING_PROVIDERS = frozenset({"google"})


@dataclass(frozen=True, slots=True)
class StorageRate:
    """What keeping an explicit cache costs, in dollars per million tokens per hour,
    and where that rate comes from (an override, or kb's table: genai-prices lacks
    storage)."""

    mtok_hour: Decimal
    source: str

    def cost(self, tokens: float, hours: float) -> float:
        """Dollars to keep `tokens` cached for `hours`."""
        return float(self.mtok_hour) * tokens * hours / 1_000_000


def cache_storage_rate(model_ref: ModelRef, *, overrides: Path | None = None) -> StorageRate | None:
    """The explicit-cache storage rate of `model_ref`: the `overrides` entry's
    `storage_mtok_hour` when it gives one, else kb's table; None when its provider
    bills no storage (Anthropic, OpenAI), when the rate is not in kb's table, or when
    genai-prices does not know the model."""
    override = price_override(model_ref, overrides)
    if override is not None and override.storage_mtok_hour is not None:
        assert overrides is not None  # an entry comes from a file
        return StorageRate(override.storage_mtok_hour, override_source(overrides))
    provider, model = split_ref(model_ref)
    try:
        found, info = get_snapshot().find_provider_model(model, None, provider or None, None)
    except LookupError:
        return None
    rate = CACHE_STORAGE_MTOK_HOUR.get((found.id, info.id))
    return None if rate is None else StorageRate(rate, CACHE_STORAGE_SOURCE)
