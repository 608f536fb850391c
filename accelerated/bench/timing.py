"""Timing and peak memory of one callable, and the record that goes with a benchmark's results."""

import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch


def measure(
    fn: Callable[[], object], device: torch.device, reps: int
) -> tuple[float, float | None]:
    """`(median milliseconds, peak MiB above what was allocated before)` of `fn()` over `reps`
    runs after one warm-up run (which compiles kernels and fills caches). On CUDA the times come
    from CUDA events, so they measure GPU work; peak memory is only known on CUDA (else None)."""
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    fn()
    if device.type != "cuda":
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times), None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(reps)]  # fmt: skip
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize(device)
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return statistics.median(start.elapsed_time(end) for start, end in events), peak


def environment(device: torch.device) -> dict:
    """Device name and library versions, for the results file."""
    try:
        import cupy

        cupy_version = cupy.__version__
    except ImportError:
        cupy_version = None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "device": name or platform.machine(),
        "device_type": device.type,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cupy": cupy_version,
        "python": sys.version.split()[0],
    }
