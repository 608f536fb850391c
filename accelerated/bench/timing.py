"""Timing and peak memory of one callable, and the record that goes with a benchmark's results."""

import os
import statistics
import sys
import time
from collections.abc import Callable

import torch


def times(fn: Callable[[], object], device: torch.device, reps: int) -> list[float]:
    """Milliseconds of each of `reps` runs of `fn()` (no warm-up). On CUDA the times come from
    CUDA events recorded around each run, so they measure GPU work; on CPU, wall time."""
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    if device.type != "cuda":
        result = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            result.append((time.perf_counter() - start) * 1e3)
        return result
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(reps)]  # fmt: skip
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) for start, end in events]


def measure(
    fn: Callable[[], object], device: torch.device, reps: int
) -> tuple[float, float | None]:
    """`(median milliseconds, peak MiB above what was allocated before)` of `fn()` over `reps`
    runs after one warm-up run (which compiles kernels and fills caches). Peak memory is only
    known on CUDA (else None)."""
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    fn()
    if device.type != "cuda":
        return statistics.median(times(fn, device, reps)), None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    ms = statistics.median(times(fn, device, reps))
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return ms, peak


def environment(device: torch.device) -> dict:
    """Device name, the CPU and its load, and library versions, for the results file."""
    from accelerated.host import cpu_model, load_average

    try:
        import cupy

        cupy_version = cupy.__version__
    except ImportError:
        cupy_version = None
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "device_type": device.type,
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": load_average(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cupy": cupy_version,
        "python": sys.version.split()[0],
    }
