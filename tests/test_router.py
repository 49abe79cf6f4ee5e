"""Routing decisions at and around the long-context limit."""

from __future__ import annotations

import pytest

from kb.core.errors import InvalidRequestError
from kb.router import Costs, Sizes, choose_path

pytestmark = pytest.mark.fast


def sizes(corpus: int, *, budget: int = 1_000, window: int = 10_000) -> Sizes:
    return Sizes(corpus, overhead_tokens=50, answer_reserve=100, budget=budget, window=window)


def test_exactly_at_the_limit_goes_long_context() -> None:
    route = choose_path("auto", sizes(850))
    assert route.path == "long_context"
    assert route.numbers["needed_tokens"] == 1_000 == route.numbers["limit_tokens"]
    assert "1,000 tokens <= limit 1,000" in route.reason


def test_one_token_over_the_limit_retrieves() -> None:
    route = choose_path("auto", sizes(851))
    assert route.path == "rag"
    assert route.numbers["fits"] is False
    assert "1,001 tokens > limit 1,000" in route.reason


def test_a_smaller_backend_window_lowers_the_limit() -> None:
    route = choose_path("auto", sizes(700, budget=200_000, window=800))
    assert route.path == "rag"
    assert route.numbers["limit_tokens"] == 800
    assert "backend window 800" in route.reason
    assert choose_path("auto", sizes(650, budget=200_000, window=800)).path == "long_context"


def test_forced_long_context_on_a_corpus_too_large_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequestError, match="does not fit .* Use mode rag or auto"):
        choose_path("long_context", sizes(5_000))


def test_forced_modes_and_self_route_start_where_they_say() -> None:
    assert choose_path("rag", sizes(10)).path == "rag"
    assert choose_path("long_context", sizes(10)).path == "long_context"
    assert choose_path("self_route", sizes(10)).path == "rag"


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="Unknown mode 'fast'"):
        choose_path("fast", sizes(10))


def test_auto_weighs_cost_when_prices_are_known() -> None:
    expensive = Costs(long_context=0.05, rag=0.001)  # 50x
    route = choose_path("auto", sizes(500), expensive, max_cost_ratio=20)
    assert route.path == "rag"
    assert "50.0x > 20x" in route.reason
    assert route.numbers["cost_ratio"] == 50.0

    cheap = Costs(long_context=0.01, rag=0.001)  # 10x
    route = choose_path("auto", sizes(500), cheap, max_cost_ratio=20)
    assert route.path == "long_context"
    assert "10.0x <= 20x" in route.reason
