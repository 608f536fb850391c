r"""`python -m accelerated.bench registers`: each attention kernel's registers, spills and shared
memory as ptxas assigns them (nvcc, no GPU), and the occupancy they allow.

ptxas fixes a kernel's registers per thread when it compiles for an architecture (sm_90: H100,
H200), and they bound how many blocks an SM holds at once. This compiles the text CuPy hands
NVRTC (`cupy_module.kernel_source`) with every template instantiation `fused_attention` may
compile, with `--resource-usage`; one row per kernel: registers per thread, spill stores and
loads (bytes per thread moved to local memory), static shared memory per block, and, with the
kernel's launch configuration (`attention.THREADS` threads per block) and the SM's limits
(`SM_LIMITS`), the resident blocks and warps per SM and which limit binds (arithmetic, not a
measurement). On a GPU, the driver reports the same attributes of the kernels a benchmark ran
(its record's `kernels`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from accelerated.bench.parser import DTYPES
from accelerated.bench.results import Results
from accelerated.kernels import attention
from accelerated.kernels.cupy_module import CUDA_TYPES, compile_options, instantiating_source

# Per SM (CUDA occupancy data): 32-bit registers, their allocation unit per warp, resident warps
# and blocks, shared memory for blocks and the part of it each block reserves.
SM_LIMITS = {
    "sm_80": {"registers": 65536, "register_unit": 256, "warps": 64, "blocks": 32,
              "shared_bytes": 167936, "reserved_shared_bytes": 1024},
    "sm_90": {"registers": 65536, "register_unit": 256, "warps": 64, "blocks": 32,
              "shared_bytes": 233472, "reserved_shared_bytes": 1024},
}
ENTRY = re.compile(r"Compiling entry function '(\w+)'")
SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers(?:.*?, (\d+) bytes smem)?")
# a mangled instantiation: _Z17attention_forwardIfLi32ELi128EE... (length-prefixed name, the
# element type, the two head sizes)
MANGLED = re.compile(r"_Z\d+(\w+?)I(f|13__nv_bfloat16)Li(\d+)ELi(\d+)E")
MANGLED_TYPES = {"f": torch.float32, "13__nv_bfloat16": torch.bfloat16}


def parse(log: str) -> dict[str, dict]:
    """{mangled kernel name: registers, spills, stack and shared bytes} from ptxas's
    `--resource-usage` lines."""
    found, current = {}, None
    for line in log.splitlines():
        if match := ENTRY.search(line):
            current = found[match[1]] = {}
        elif current is not None and (match := SPILLS.search(line)):
            current.update(stack_frame_bytes=int(match[1]), spill_stores_bytes=int(match[2]),
                           spill_loads_bytes=int(match[3]))
        elif current is not None and (match := USED.search(line)):
            current.update(registers=int(match[1]), shared_bytes=int(match[2] or 0))
    return found


def readable_name(mangled: str) -> str:
    """`_Z17attention_forwardIfLi32ELi128E...` -> `attention_forward<float, 32, 128>`."""
    match = MANGLED.match(mangled)
    if match is None:
        return mangled
    kernel, element, d_qk, d_v = match.groups()
    return attention.kernel_name(kernel, MANGLED_TYPES[element], int(d_qk), int(d_v))


def occupancy(registers: int, shared_bytes: int, threads: int, limits: dict) -> dict:
    """Resident blocks and warps per SM of a kernel, and the limit that binds them."""
    warps = -(-threads // 32)
    unit = limits["register_unit"]
    registers_per_warp = -(-registers * 32 // unit) * unit
    blocks = {
        "registers": limits["registers"] // (registers_per_warp * warps),
        "shared memory": limits["shared_bytes"] // (shared_bytes + limits["reserved_shared_bytes"]),
        "warps": limits["warps"] // warps,
        "blocks": limits["blocks"],
    }
    binding = min(blocks, key=blocks.get)
    return {"blocks_per_sm": blocks[binding], "warps_per_sm": blocks[binding] * warps,
            "bound_by": binding}


def nvcc_command(nvcc: str, dtype: torch.dtype, arch: str, source: Path) -> list[str]:
    return [nvcc, *compile_options(dtype), f"-arch={arch}", "--cubin", "--resource-usage",
            str(source), "-o", str(source.with_suffix(".cubin"))]


def resource_usage(arch: str, dtype: torch.dtype) -> tuple[list[dict], str]:
    """One row per attention kernel `fused_attention` may compile for `dtype`, in
    `attention.instantiations` order; and the nvcc command that gave them (its source file:
    `instantiating_source` of attention.cu, the text NVRTC compiles with every instantiation)."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise ValueError("registers needs nvcc (the CUDA toolkit) on the PATH; no GPU")
    names = attention.instantiations(dtype)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / f"attention.{arch}.{CUDA_TYPES[dtype]}.cu"
        source.write_text(instantiating_source(attention.SOURCE, names))
        command = nvcc_command(nvcc, dtype, arch, source)
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise ValueError(f"nvcc failed for {arch}: {done.stderr.strip()[:500]}")
    usage = {readable_name(m): figures for m, figures in parse(done.stdout + done.stderr).items()}
    missing = sorted(set(names) - set(usage))
    if missing:
        raise ValueError(f"ptxas reported nothing for {missing[0]} ({len(missing)} in all)")
    rows = []
    for name in names:
        figures = usage[name]
        rows.append({"kernel": name, "arch": arch, "threads_per_block": attention.THREADS,
                     **figures, **occupancy(figures["registers"], figures["shared_bytes"],
                                            attention.THREADS, SM_LIMITS[arch])})
    return rows, " ".join(["nvcc", *command[1:-3], source.name])  # the file: see the docstring


def format_table(rows: list[dict]) -> str:
    header = (f"{'kernel':52} {'regs':>4} {'spill st/ld B':>13} {'smem B':>7} "
              f"{'warps/SM':>8}  bound by")
    lines = [header, "-" * len(header)]
    for r in rows:
        spills = f"{r['spill_stores_bytes']}/{r['spill_loads_bytes']}"
        lines.append(f"{r['kernel']:52} {r['registers']:4d} {spills:>13} {r['shared_bytes']:7d} "
                     f"{r['warps_per_sm']:8d}  {r['bound_by']}")
    return "\n".join(lines)


def main(args) -> int:
    """Compile, print the table, write the record (rows for each dtype asked, in order)."""
    dtypes = [DTYPES[name] for name in args.dtypes]
    nvcc = shutil.which("nvcc")
    version = None
    if nvcc is not None:
        lines = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
        version = next((line for line in lines.splitlines() if "release" in line), None)
    results = Results(args.out, "registers", args.command,
                      {"device": f"ptxas {args.arch}", "device_type": "none (compiled only)",
                       "nvcc": version})
    rows, commands = [], []
    for dtype in dtypes:
        found, command = resource_usage(args.arch, dtype)
        rows += found
        commands.append(command)
    path = results.finish(rows, {"arch": args.arch, "sm_limits": SM_LIMITS[args.arch],
                                 "nvcc_commands": commands})
    print(format_table(rows))
    print("\n" + "\n".join(commands))
    print(f"\nwrote {path}")
    return 0
