"""Every test is in exactly one lane (tests/lanes.py): a test in none, or in two, errors."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.fast


def test_a_test_in_no_lane_or_two_fails_and_one_in_a_lane_passes(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nmarkers =\n    fast: f\n    integration: i\n    slow: s\n")
    pytester.makepyfile(
        """
        import pytest

        def test_unmarked():
            pass

        @pytest.mark.fast
        @pytest.mark.slow
        def test_two_lanes():
            pass

        @pytest.mark.integration
        def test_one_lane():
            pass
        """
    )
    result = pytester.runpytest("-p", "tests.lanes")
    result.assert_outcomes(passed=1, errors=2)  # at set-up: the run fails, nothing runs
    result.stdout.fnmatch_lines(
        [
            "*test_unmarked is in no lane: mark it with exactly one of @pytest.mark.fast*",
            "*test_two_lanes is in ?'fast', 'slow'?*",
        ]
    )
