"""Shared test set-up: Hypothesis profiles, GPU skipping, a fresh torch.compile cache."""

import os
import tempfile

import kernel_stand_ins
import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["fault_tally"]  # counts of the fault suite, printed at the end

# torch.compile's on-disk cache does not key on the custom ops' Python fakes: a cache left by
# another checkout (or an older commit) can hand a test a stale graph, whose stride assertions
# then fail. Every test session compiles into a folder of its own.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="sagan-inductor-"))

# Hypothesis profiles. "repeatable", the default (with or without CI set): every run on every
# machine draws the same examples (derandomized: they depend only on each test's source and the
# Hypothesis version; derandomize also turns the local example database off), 25 per test, so a
# learner's `python -m pytest` and CI see the same cases and the same result.
# "explore", opt-in: new random examples on every run, ten times as many, for a developer's hunt:
#   HYPOTHESIS_PROFILE=explore python -m pytest tests/test_ops_attention.py
# A failure prints its example (and a @reproduce_failure blob); keep it as an @example(...).
# Tests that set their own max_examples (the fault fuzzers, the C++ power iteration) keep it.
_COMMON = {
    "deadline": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("repeatable", max_examples=25, derandomize=True, **_COMMON)
# Each profile names derandomize itself: with CI set, Hypothesis's own default profile is
# derandomized, and a profile that left it out would inherit that on CI only.
settings.register_profile("explore", max_examples=250, derandomize=False, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU: none is present on this machine")
    for item in items:
        if item.get_closest_marker("gpu"):  # the marker, not any keyword (a test id "gpu")
            item.add_marker(skip_gpu)


@pytest.fixture
def stand_in_kernels():
    """The CPU stand-ins (tests/kernel_stand_ins.py) registered as the kernels for CPU tensors,
    for one test."""
    kernel_stand_ins.register_kernels()
    yield
    kernel_stand_ins.unregister_kernels()
