"""Test lanes: every test is in exactly one of `fast`, `integration` or `slow`.

    fast         deterministic and quick: no model, no store, no server (`pytest -m fast`)
    integration  real parts on this machine: the bundled model, Chroma, HTTP on loopback
    slow         a real llama.cpp server or a browser

A test in no lane, or in two, fails with a message that says how to mark it. The
lanes are declared in pyproject.toml's pytest markers.
"""

from __future__ import annotations

import pytest

LANES = ("fast", "integration", "slow")


def lanes_of(item: pytest.Item) -> list[str]:
    return [lane for lane in LANES if item.get_closest_marker(lane) is not None]


@pytest.fixture(autouse=True)
def _in_one_lane(request: pytest.FixtureRequest) -> None:
    lanes = lanes_of(request.node)
    if len(lanes) != 1:
        pytest.fail(
            f"{request.node.nodeid} is in {lanes or 'no lane'}: mark it with exactly one of "
            "@pytest.mark.fast, @pytest.mark.integration or @pytest.mark.slow (tests/lanes.py)",
            pytrace=False,
        )
