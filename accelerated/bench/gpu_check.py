"""`python -m accelerated.bench gpu-check`: the one GPU check, within 8 minutes on one H100 or H200.

Four stages, each a subprocess with its own time budget, so a crash, a hang or a CUDA error in
one stage costs that stage only:

1. the GPU tests (`tests/test_kernels_gpu.py` and the GPU tests of the backend and the routes);
2. `bench step` at the 128x128 preset, B = 256: the rows of `STEP_ROWS`, most important first
   (a budget cut drops the last), each with its compile time apart from its step time; the CUDA
   graphs and R1 rows are left out;
3. `bench attention` at the model's shapes (G and D, 32x32 and 64x64, B = 256, bfloat16) for
   the readable path, every SDPA backend (a backend that refuses the shapes says so) and the
   CuPy kernel;
4. `bench sn`: spectral norm of every SN layer of the 128x128 G and D.

Each benchmark writes its own JSON under `--out` as each row finishes; the check's record,
`gpu-check-<device>-<time>.json`, lists every stage as it ends (status, seconds, the files it
wrote, the log's last lines, and the attributes on this GPU of each CuPy kernel the stage
compiled: registers per thread, shared and local memory, max threads per block) and each
stage's full log sits beside it. `--dry-run` checks the
plan on any machine (every command line parses, the preset, rows, shapes and test files exist,
the budgets fit in the 8 minutes) and prints it.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from accelerated.bench import attention, step
from accelerated.bench.results import Results
from accelerated.bench.timing import environment

TOTAL_BUDGET_S = 8 * 60
ROOT = Path(__file__).resolve().parents[2]
GPU_TESTS = ("tests/test_kernels_gpu.py", "tests/test_backend.py", "tests/test_attention_routes.py")
# bench step's rows in the order they run, most important first: a stage cut by its budget
# loses the last. The baseline (every ratio's reference), then the fast path (what training
# runs; it compiles first, with a cold cache), the levers, and the float32 compile last. Left
# out: the CUDA graphs and R1 rows.
STEP_ROWS = ("baseline", "fast path", "bf16 autocast", "SDPA attention", "channels-last",
             "fused Adam", "fused Adam + host waits", "CuPy kernels", "torch.compile")


@dataclass(frozen=True)
class Stage:
    name: str
    budget_s: int
    argv: tuple[str, ...]  # after `python -m`
    bench: bool  # an `accelerated.bench` command (its own JSON), else pytest


def stages(out: Path) -> list[Stage]:
    bench = ("accelerated.bench",)
    where = ("--out", str(out))
    return [
        Stage(
            "GPU tests", 150, ("pytest", "-q", "-rfEs", "-p", "no:cacheprovider", *GPU_TESTS), False
        ),
        Stage(
            "training step",
            210,
            (
                *bench,
                "step",
                "--preset",
                "imagenet128",
                "--iters",
                "10",
                "--warmup",
                "2",
                "--rows",
                *STEP_ROWS,
                *where,
            ),
            True,
        ),
        Stage(
            "attention",
            60,
            (
                *bench,
                "attention",
                "--dtype",
                "bfloat16",
                "--sizes",
                "32",
                "64",
                "--batches",
                "256",
                "--reps",
                "10",
                *where,
            ),
            True,
        ),
        Stage("spectral norm", 30, (*bench, "sn", "--reps", "10", *where), True),
    ]


def check_plan(plan: list[Stage]) -> list[str]:
    """The problems of `plan` (empty when it is runnable): budgets, command lines, presets,
    rows, shapes and test files, all checked without running anything."""
    from accelerated.bench.parser import make_parser
    from accelerated.bench.trainer import config

    problems = []
    total = sum(s.budget_s for s in plan)
    if total > TOTAL_BUDGET_S:
        problems.append(f"the stages' budgets add up to {total} s, over {TOTAL_BUDGET_S} s")
    for s in plan:
        if not s.bench:
            problems += [f"{s.name}: no {t}" for t in GPU_TESTS if not (ROOT / t).is_file()]
            continue
        try:
            args = make_parser().parse_args(list(s.argv[1:]))
        except SystemExit:
            problems.append(f"{s.name}: the command line does not parse: {' '.join(s.argv)}")
            continue
        if args.benchmark == "step":
            config(args.preset)  # raises on an unknown preset
            problems += [f"{s.name}: no row {r!r}" for r in args.rows or [] if r not in step.ROWS]
        if args.benchmark == "attention":
            attention.cases(args.sizes, args.batches)  # raises where the model has no such map
    return problems


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_stage(s: Stage, out: Path, logs: Path) -> dict:
    """Run one stage in a subprocess within its budget; its row for the record."""
    log = logs / (s.name.replace(" ", "-") + ".log")
    before = set(out.glob("*.json"))
    env = {**os.environ, "CI": "1"}  # the bounded Hypothesis profile
    start = time.monotonic()
    with log.open("w") as sink:
        try:
            code = subprocess.run(
                [sys.executable, "-m", *s.argv],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=s.budget_s,
            ).returncode
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            status = f"cut at its {s.budget_s} s budget"
    written = sorted(str(p) for p in set(out.glob("*.json")) - before)
    row = {
        "stage": s.name,
        "status": status,
        "seconds": round(time.monotonic() - start, 1),
        "budget_s": s.budget_s,
        "command": shlex.join(s.argv),
        "log": str(log),
        "results": written,
        "log_tail": _tail(log),
    }
    return {**row, "kernels": kernels_of(written)} if s.bench else row


def kernels_of(paths) -> dict[str, dict]:
    """{kernel name: attributes on this device} from the `kernels` of benchmark records."""
    found = {}
    for path in paths:
        try:
            found.update(json.loads(Path(path).read_text()).get("kernels", {}))
        except (OSError, ValueError) as error:  # a stage cut mid-write: say so, keep going
            found[f"(unreadable {Path(path).name})"] = {"error": str(error)[:200]}
    return found


def main(args) -> int:
    out = Path(args.out).resolve()  # once: the stages run in ROOT, this process wherever it was
    plan = stages(out)
    problems = check_plan(plan)
    for s in plan:
        print(f"{s.name:14} {s.budget_s:4d} s  python -m {shlex.join(s.argv)}")
    print(f"total budget {sum(s.budget_s for s in plan)} s of {TOTAL_BUDGET_S} s")
    if problems:
        raise ValueError("the gpu-check plan is broken: " + "; ".join(problems))
    if args.dry_run:
        print("plan checked (--dry-run: nothing run, nothing written)")
        return 0
    if not torch.cuda.is_available():
        raise ValueError("gpu-check needs a CUDA GPU; on this machine run it with --dry-run")
    results = Results(out, "gpu-check", args.command, environment(torch.device("cuda")))
    logs = results.path.with_suffix("")
    logs.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in plan:
        rows.append(run_stage(s, out, logs))
        results.add(rows[-1])
        print(f"{s.name}: {rows[-1]['status']} ({rows[-1]['seconds']} s)", flush=True)
    print(f"wrote {results.finish(rows, {'budget_s': TOTAL_BUDGET_S})}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1
