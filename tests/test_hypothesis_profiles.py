"""The Hypothesis profiles of tests/conftest.py: `python -m pytest` with no environment variable
draws the same examples on every run and machine; HYPOTHESIS_PROFILE=explore draws new ones."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


def drawn(profile: settings) -> list:
    """The examples one run of a property draws under `profile` (same source every call, so
    the same function digest, which is what derandomize seeds from)."""
    seen = []

    @settings(profile, database=None)
    @given(st.integers(), st.floats(allow_nan=False), st.lists(st.booleans()))
    def prop(a, b, c):
        seen.append((a, b, tuple(c)))

    prop()
    return seen


def test_the_default_profile_is_the_repeatable_one():
    if "HYPOTHESIS_PROFILE" in os.environ:
        pytest.skip(f"HYPOTHESIS_PROFILE={os.environ['HYPOTHESIS_PROFILE']} chose another profile")
    default, repeatable = settings.default, settings.get_profile("repeatable")
    assert default.derandomize and default.max_examples == repeatable.max_examples


def test_repeatable_draws_the_same_examples_every_run_and_explore_new_ones():
    repeatable, explore = settings.get_profile("repeatable"), settings.get_profile("explore")
    first = drawn(repeatable)
    assert len(first) == repeatable.max_examples and drawn(repeatable) == first
    assert explore.max_examples == 10 * repeatable.max_examples
    assert not explore.derandomize and drawn(explore) != drawn(explore)
