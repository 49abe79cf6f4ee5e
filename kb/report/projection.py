"""Cost projections: a mode's measured token mix priced on a provider model and
extended to a monthly volume, and the volumes where the cheaper path changes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from kb.backends.cost import StorageRate
from kb.core.errors import InvalidRequestError, SettingsError
from kb.core.models import Usage

Pricer = Callable[[str, Usage], "float | None"]
MINUTES_PER_MONTH = 30 * 24 * 60


@dataclass(frozen=True, slots=True)
class TokenMix:
    """The tokens one answered question used, split by how a provider would bill them.

    `prefix_tokens` is the cacheable corpus prefix of a long-context request (0 when
    the question was answered from retrieval alone); `input_tokens` is everything
    else sent (instructions, passages, question); `output_tokens` the answer."""

    input_tokens: int
    prefix_tokens: int
    output_tokens: int

    @classmethod
    def from_usage(cls, usage: Usage) -> TokenMix:
        return cls(
            input_tokens=usage.input_tokens,
            prefix_tokens=usage.cache_read_tokens + usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
        )

    def usage(self, prefix_as: str) -> Usage:
        """As a provider request: the prefix as a cache `read`, a cache `write`, or
        plain `input` (no caching)."""
        return Usage(
            input_tokens=self.input_tokens + (self.prefix_tokens if prefix_as == "input" else 0),
            cache_read_tokens=self.prefix_tokens if prefix_as == "read" else 0,
            cache_write_tokens=self.prefix_tokens if prefix_as == "write" else 0,
            output_tokens=self.output_tokens,
        )


@dataclass(frozen=True, slots=True)
class CostCurve:
    """Monthly cost of one mode on one provider model, as a function of volume.

    The model: `V` questions a month arrive evenly spread; a share `prefix_share`
    of them sends the corpus prefix (long context). The provider keeps a cached
    prefix for `cache_ttl_minutes`, so a month holds W = minutes per month / TTL
    cache lifetimes. The first prefix question in a lifetime writes the cache, the
    others read it, so a month pays min(prefix_share * V, W) cache writes:

        cached(V)   = V * warm + min(prefix_share * V, W) * (write_surcharge + storage)
        uncached(V) = V * uncached_per_question

    `warm` is the mean cost of a question whose prefix is a cache read;
    `write_surcharge` the mean extra cost of a prefix question that writes the
    cache instead; `storage` (`storage_per_lifetime`) what keeping the prefix in an
    explicit cache for one lifetime costs where the provider bills storage per
    token-hour (Gemini), 0 elsewhere: each written cache is kept for one TTL, so a
    month stores the prefix for min(prefix_share * V, W) * TTL hours. Counting
    lifetimes from their start is conservative: providers that refresh the lifetime
    on every hit write less often at high volume."""

    mode: str
    model: str
    warm: float
    write_surcharge: float
    prefix_share: float
    uncached_per_question: float
    windows_per_month: float
    storage_per_lifetime: float = 0.0
    prefix_tokens: float = 0.0  # the mean cached prefix of a prefix question

    def writes(self, volume: float) -> float:
        """Cache writes (and so explicit caches stored for one lifetime) a month."""
        return min(self.prefix_share * volume, self.windows_per_month)

    def monthly(self, volume: float, cached: bool = True) -> float:
        if not cached:
            return volume * self.uncached_per_question
        writes = self.writes(volume)
        return volume * self.warm + writes * (self.write_surcharge + self.storage_per_lifetime)

    def monthly_storage(self, volume: float) -> float:
        """The explicit-cache storage in `monthly(volume)` (0 without a storage rate)."""
        return self.writes(volume) * self.storage_per_lifetime

    def per_1000(self, volume: float, cached: bool = True) -> float:
        """Cost of 1,000 questions at a monthly `volume`."""
        return 1000 * self.monthly(volume, cached) / volume if volume > 0 else 0.0

    @property
    def kink(self) -> float | None:
        """The volume above which every cache lifetime already has its write."""
        return self.windows_per_month / self.prefix_share if self.prefix_share > 0 else None


def cost_curve(
    mode: str,
    model: str,
    mixes: Sequence[TokenMix],
    pricer: Pricer,
    cache_ttl_minutes: float,
    storage: StorageRate | None = None,
) -> CostCurve:
    """Price each question's real token mix on `model` (a `provider:model` name) three
    ways (prefix read, written, uncached) and fold them into a CostCurve; with a
    `storage` rate, each cache lifetime also stores the mean prefix for the TTL.

    Each request is priced on its own, so tiered prices (e.g. above 200k input
    tokens) apply per request as the provider bills them. Raises SettingsError
    when the price table does not know `model`."""
    if not mixes:
        raise InvalidRequestError(f"No answered questions to price for mode {mode}.")
    if cache_ttl_minutes <= 0:
        raise InvalidRequestError("The cache lifetime must be positive.")

    def price(mix: TokenMix, prefix_as: str) -> float:
        value = pricer(model, mix.usage(prefix_as))
        if value is None:
            raise SettingsError(
                f"No price is known for {model!r}; pick a model genai-prices knows "
                "(e.g. openai:gpt-4.1-mini) or add it to KB_PRICE_OVERRIDES."
            )
        return float(value)

    warm, surcharges, uncached, prefixes = [], [], [], []
    for mix in mixes:
        read = price(mix, "read")
        warm.append(read)
        uncached.append(price(mix, "input") if mix.prefix_tokens else read)
        if mix.prefix_tokens:
            surcharges.append(price(mix, "write") - read)
            prefixes.append(mix.prefix_tokens)
    prefix = sum(prefixes) / len(prefixes) if prefixes else 0.0
    stored = storage.cost(prefix, cache_ttl_minutes / 60) if storage is not None else 0.0
    return CostCurve(
        mode=mode,
        model=model,
        warm=sum(warm) / len(warm),
        write_surcharge=sum(surcharges) / len(surcharges) if surcharges else 0.0,
        prefix_share=len(surcharges) / len(mixes),
        uncached_per_question=sum(uncached) / len(uncached),
        windows_per_month=MINUTES_PER_MONTH / cache_ttl_minutes,
        storage_per_lifetime=stored,
        prefix_tokens=prefix,
    )


@dataclass(frozen=True, slots=True)
class BreakEven:
    """Which of two monthly cost lines is cheaper over the whole volume axis.

    `sides[i]` names the cheaper side (or "equal") between `volumes[i-1]` and
    `volumes[i]` (from 0 for the first, to infinity for the last): `volumes` are
    the break-even volumes, where the cheaper side changes. No volumes means one
    side is cheaper (or both cost the same) at every volume."""

    first: str
    second: str
    volumes: tuple[float, ...]
    sides: tuple[str, ...]

    @property
    def cheaper_at_low(self) -> str:
        return self.sides[0]

    @property
    def cheaper_at_high(self) -> str:
        return self.sides[-1]

    def explain(self) -> str:
        def name(side: str) -> str:
            return "both cost the same" if side == "equal" else f"{side} is cheaper"

        if not self.volumes:
            if self.sides[0] == "equal":
                return f"{self.first} and {self.second} cost the same at every volume"
            return f"{self.sides[0]} is cheaper at every volume"
        parts = [f"{name(self.sides[0])} below {self.volumes[0]:,.0f}"]
        for i in range(1, len(self.volumes)):
            parts.append(
                f"{name(self.sides[i])} from {self.volumes[i - 1]:,.0f} to {self.volumes[i]:,.0f}"
            )
        parts.append(f"{name(self.sides[-1])} above {self.volumes[-1]:,.0f}")
        return "; ".join(parts) + " questions/month"


def break_even(
    first: Callable[[float], float],
    second: Callable[[float], float],
    kinks: Iterable[float | None],
    names: tuple[str, str],
) -> BreakEven:
    """Where the cheaper of two monthly cost functions changes along the volume axis.

    Both must be linear between the given kinks (as `CostCurve.monthly` is): on
    each linear piece the crossing is solved exactly, and the side is read in the
    middle of every stretch, so lines that are equal up to a kink and then part
    (a cache-write surcharge of zero, say) break even at that kink."""
    points = sorted({k for k in kinks if k is not None and k > 0})
    bounds = [0.0, *points]

    def side(volume: float) -> str:
        a, b = first(volume), second(volume)
        if abs(a - b) <= 1e-9 * (abs(a) + abs(b)):
            return "equal"
        return names[0] if a < b else names[1]

    stretches: list[tuple[float, str]] = []  # (start volume, cheaper side)
    for i, low in enumerate(bounds):
        high = bounds[i + 1] if i + 1 < len(bounds) else None
        probe = high if high is not None else 2 * low + 1.0
        d_low, d_probe = first(low) - second(low), first(probe) - second(probe)
        slope = (d_probe - d_low) / (probe - low)
        root = low - d_low / slope if slope else None
        cuts = [low]
        if root is not None and low < root and (high is None or root < high):
            cuts.append(root)
        for j, start in enumerate(cuts):
            end = cuts[j + 1] if j + 1 < len(cuts) else high
            middle = (start + end) / 2 if end is not None else 2 * start + 1.0
            current = side(middle)
            if not stretches or stretches[-1][1] != current:
                stretches.append((start, current))
    return BreakEven(
        names[0],
        names[1],
        volumes=tuple(start for start, _ in stretches[1:]),
        sides=tuple(s for _, s in stretches),
    )
