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

# "sagan-ci": thorough but bounded: CI runs on 2 cores within a time budget.
settings.register_profile(
    "sagan-ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# "dev": a few more random examples on a developer's machine.
settings.register_profile(
    "dev",
    max_examples=40,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# "thorough": for a long local hunt, e.g. HYPOTHESIS_PROFILE=thorough pytest tests/
settings.register_profile("thorough", max_examples=500, deadline=None)
_default_profile = "sagan-ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default_profile))


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
