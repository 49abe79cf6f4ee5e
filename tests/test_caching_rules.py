"""The caching rules behind the cost projection, read from the bundled price table:
Anthropic's write premiums (1.25x for 5 minutes, 2x for 1 hour) and 0.1x reads,
price steps above a prompt size (Gemini above 200k, some OpenAI models above 272k),
and the report's section that states them and names what the table lacks."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kb.backends.cost import caching_rates, estimate_cost, one_hour_write_extra
from kb.core.models import Usage
from kb.report.caching_rules import caching_rules
from kb.report.markdown import render_markdown
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
        "automatic from 1,024 tokens, no write premium; longer retention at no extra price",
    ]
    text = render_markdown(_summary(), [])
    assert "## Caching rules behind the projection" in text
    assert "5-minute cache lifetime, so writes are priced at the 5-minute rate" in text
