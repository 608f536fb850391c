"""The machine a measurement ran on, in the words result files use: the CPU's model name and the
load average, so a time or a bit-exact result names the CPU kind it holds for."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def load_average() -> float:
    """The machine's load average over the last minute (NaN where the OS does not say)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
