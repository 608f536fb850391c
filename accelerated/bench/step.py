r"""Benchmark of the whole training step: the plain baseline against the project's fast path.

Every row builds the project's real GAN step (`accelerated.training.gan_step.GANStep`) for one
preset and times `GANStep.iteration` (one D step and one G step) on a synthetic batch and noise
already on the device (`accelerated.bench.trainer`), so data loading is not measured here
(`bench data` is). Rows:

- `baseline`: the model as typical public PyTorch SAGANs run it: eager, float32, contiguous
  tensors, attention as `softmax(q k^T) v` with batched matrix products (the layer's readable
  path), PyTorch's spectral norm, `torch.optim.Adam` with PyTorch's default implementation;
- one lever at a time on top of the baseline: bf16 autocast (`run.bf16`), channels-last
  (`run.channels_last`), PyTorch's fused attention (SDPA), the CuPy kernels (attention and hinge
  losses), fused Adam, `torch.compile` (`run.compile`), and `torch.compile` with CUDA graphs
  (mode "reduce-overhead");
- fused Adam with the default Adam's host waits: the one row that is not a training setting.
  Without fused Adam the step waits on the host for each update's finite flag (`GANStep.step_if`,
  one wait per D step and one for G); fused Adam skips a bad update on the device and does not
  wait. This row makes fused Adam wait as often as the default does, so the baseline against it
  is the fused kernel alone, and it against "fused Adam" is the waits alone;
- `fast path`: all levers of training (bf16, channels-last, the backend's automatic kernel
  choice, fused Adam, compile), and the same with CUDA graphs;
- the price of a regulariser, not a lever: the baseline with the R1 penalty on every iteration
  (`optim.r1_gamma`), and lazy, every 4th (`optim.r1_every`). The lazy row's median is an
  iteration without the penalty: its price is its mean (`ms_mean`, in the JSON).

Each lever is a training setting (`Levers.settings`: `run.bf16`, `run.channels_last`,
`run.attention_route` with `run.backend`, `run.fused_adam`, `run.compile` with
`run.compile_mode`; all but `host_waits`, see above), so a row measures exactly what a training
run with those settings runs.
A lever that cannot act on this device (bf16 and channels-last act on CUDA only) is
listed as not run, with the reason. A row that fails says how in its status; the other rows
still run. A row in which any call ran PyTorch in place of a kernel it meant to time (a kernel
that did not compile, heads it does not take) has the status `fallback`, with why.

Each row warms up, then times single iterations (CUDA events on a GPU, so GPU work is measured;
every iteration ends with the step's own host synchronisation). The first warm-up iteration is
timed apart, by the wall clock (`first_iteration_s`): for a compiled row it is the compile time
(Dynamo and Inductor, for every graph of the step), for the others the first launches, cuDNN's
algorithm search and any NVRTC compile; the step times never include it. On a GPU the rows run
one after the other, each alone in memory, in the order asked (`--rows`; the baseline first); on
a CPU all rows are built first and their iterations interleaved, so a change in the machine's
load hits every row alike.
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import time
from dataclasses import dataclass

import torch

from accelerated.backend import cupy_usable
from accelerated.bench import fallbacks
from accelerated.bench.timing import times
from accelerated.bench.trainer import config, synthetic_gan, synthetic_step

# levers.attention -> (run.attention_route, run.backend)
ATTENTION = {"naive": ("readable", "torch"), "sdpa": ("sdpa", "torch"), "cupy": ("kernel", "cupy"),
             "auto": ("auto", "auto")}


@dataclass(frozen=True)
class Levers:
    """One row's settings; the defaults are the baseline."""

    bf16: bool = False
    channels_last: bool = False
    attention: str = "naive"  # "naive" (bmm-softmax-bmm), "sdpa", "cupy", "auto" (the backend's)
    fused_adam: bool = False
    compile: str | None = None  # None, "default" (run.compile), "reduce-overhead" (CUDA graphs)
    r1_every: int = 0  # 0: no R1 penalty; k: on every k-th iteration (optim.r1_every)
    host_waits: bool = False  # not a setting: fused Adam waits for each finite flag, as default

    def settings(self) -> dict:
        """The training settings of these levers."""
        route, backend = ATTENTION[self.attention]
        return {"optim.r1_gamma": R1_GAMMA if self.r1_every else 0.0,
                "optim.r1_every": max(1, self.r1_every),
                "run.bf16": self.bf16, "run.channels_last": self.channels_last,
                "run.attention_route": route, "run.backend": backend,
                "run.fused_adam": self.fused_adam, "run.compile": self.compile is not None,
                "run.compile_mode": self.compile or "default"}


R1_GAMMA = 0.1  # every gamma costs the same; this is the one measured on the builtin preset
BASELINE = Levers()
FAST = Levers(bf16=True, channels_last=True, attention="auto", fused_adam=True, compile="default")
ROWS = {
    "baseline": BASELINE,
    "bf16 autocast": Levers(bf16=True),
    "channels-last": Levers(channels_last=True),
    "SDPA attention": Levers(attention="sdpa"),
    "CuPy kernels": Levers(attention="cupy"),
    "fused Adam": Levers(fused_adam=True),
    "fused Adam + host waits": Levers(fused_adam=True, host_waits=True),
    "torch.compile": Levers(compile="default"),
    "compile + CUDA graphs": Levers(compile="reduce-overhead"),
    "fast path": FAST,
    "fast path + CUDA graphs": dataclasses.replace(FAST, compile="reduce-overhead"),
    "R1 penalty": Levers(r1_every=1),
    "lazy R1 (every 4)": Levers(r1_every=4),
}
# Levers the training step cannot use yet: listed, never silently dropped.
NOT_IN_TRAINING = {
    "batched SN kernel": "the models' layers use PyTorch's SN parametrization; no setting runs "
    "the batched power-iteration kernel in a training step (`bench sn` times it alone)",
}


def inactive(levers: Levers, device: torch.device, quick: bool) -> dict[str, tuple]:
    """The levers set in `levers` that cannot act on `device`: {field: (what it falls back to,
    "lever: why")}."""
    why = {}
    if device.type != "cuda":
        if levers.bf16:
            why["bf16"] = (False, "bf16 autocast: needs CUDA (training autocasts on CUDA only)")
        if levers.channels_last:
            why["channels_last"] = (False, "channels-last: needs CUDA (training uses it on "
                                           "CUDA only)")
        if levers.attention == "cupy":
            why["attention"] = ("naive", "CuPy kernels: need CUDA")
        if levers.compile == "reduce-overhead":
            why["compile"] = ("default", "CUDA graphs: needs CUDA")
    elif levers.attention == "cupy" and not cupy_usable():
        why["attention"] = ("naive", "CuPy kernels: need CuPy (pip install -e '.[cuda13]')")
    if quick and levers.compile:
        left_out = "torch.compile: left out by --quick (compiling takes minutes)"
        why["compile"] = (None, why["compile"][1] if "compile" in why else left_out)
    return why


def attention_path(levers: Levers, device: torch.device) -> str:
    """Which attention actually runs: "naive", "sdpa" or "cupy" (the default route: SDPA on
    CUDA, the readable path elsewhere; no kernel runs unless chosen)."""
    if levers.attention == "auto":
        return "sdpa" if device.type == "cuda" else "naive"
    return levers.attention


def waiting(step_if):
    """`GANStep.step_if` that first waits on the host for the finite flag, as the default Adam's
    step does (fused Adam's own does not wait)."""

    def step(opt, ok):
        bool(ok)  # the host wait of `elif ok:`
        step_if(opt, ok)

    return step


def prepare(preset: str, batch: int, levers: Levers, device: torch.device):
    """`(gan, step)`: the GAN step built with `levers`, and a function running one iteration."""
    gan = synthetic_gan(config(preset, batch, levers.settings()), device)
    if levers.host_waits:
        gan.step_if = waiting(gan.step_if)
    iteration = synthetic_step(gan)
    if levers.compile != "reduce-overhead":
        return gan, iteration

    def step():
        torch.compiler.cudagraph_mark_step_begin()
        return iteration()

    return gan, step


@dataclass
class Plan:
    """A row to run: the levers it runs with, which of its levers stay off here, its timings."""

    name: str
    levers: Levers
    note: str
    off_reasons: list[str]
    step: object = None
    ms: list[float] = dataclasses.field(default_factory=list)
    peak_mib: float | None = None
    first_iteration_s: float | None = None  # wall seconds: compiling, for a compiled row
    error: str | None = None
    fallbacks: set[str] = dataclasses.field(default_factory=set)  # why a kernel did not run

    def run(self, device: torch.device, reps: int) -> list[float]:
        """`times` of `reps` iterations, noting any call that ran PyTorch in a kernel's place."""
        before = fallbacks.snapshot()
        try:
            return times(self.step, device, reps)
        finally:
            self.fallbacks.update(fallbacks.since(before))


def plans(device: torch.device, quick: bool, only=None) -> tuple[list[Plan], dict[str, dict]]:
    """The rows that can run here, in the order to run them, and {name: row} of those that
    cannot (with why). A row runs with its levers that cannot act here turned off, unless what
    is left is the baseline or an earlier row (then it would measure nothing new). `only`: the
    names of the rows to run, in that order (the baseline first, as every ratio needs it; the
    others are listed as left out)."""
    runnable, skipped = [], {}
    for name in run_order(only):
        levers = ROWS[name]
        if only is not None and name not in only:
            skipped[name] = {"status": "not run", "note": "left out (--rows)"}
            continue
        why = inactive(levers, device, quick)
        active = dataclasses.replace(levers, **{k: fallback for k, (fallback, _) in why.items()})
        reasons = [reason for _, reason in why.values()]
        if name != "baseline" and active in [BASELINE] + [p.levers for p in runnable]:
            skipped[name] = {"status": "not run", "note": "; ".join(reasons)}
        else:
            off = [reason.split(":")[0] for reason in reasons]
            note = f"off here: {', '.join(off)}" if off else ""
            runnable.append(Plan(name, active, note, reasons))
    for name, why in NOT_IN_TRAINING.items():
        skipped[name] = {"status": "not run", "note": why}
    return runnable, skipped


def run_order(only=None) -> list[str]:
    """The names of `ROWS`: those of `only` first, in its order (the baseline before them)."""
    first = [] if only is None else sorted(only, key=lambda name: name != "baseline")
    return first + [name for name in ROWS if name not in first]


def _failure(error: Exception) -> str:
    if isinstance(error, torch.OutOfMemoryError):
        return "out of memory"
    first = (str(error).strip().splitlines() or [""])[0][:200]
    return f"failed: {type(error).__name__}: {first}".rstrip(": ")


def _free(device: torch.device) -> None:
    gc.collect()
    torch._dynamo.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_group(group: list[Plan], preset, batch, device, iters: int, warmup: int) -> None:
    """Build and warm up every plan of `group`, then time `iters` iterations of each, interleaved
    (one iteration of each plan in turn); fills `ms`, `peak_mib` and `error`."""
    gans = []
    for plan in group:
        try:
            gan, plan.step = prepare(preset, batch, plan.levers, device)
            gans.append(gan)
            start = time.perf_counter()
            plan.run(device, 1)  # ends with a device synchronisation
            plan.first_iteration_s = time.perf_counter() - start
            if warmup > 1:
                plan.run(device, warmup - 1)
        except Exception as error:  # this row's failure (a compile error, say), not the run's
            plan.error, plan.step = _failure(error), None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(iters):
        for plan in (p for p in group if p.error is None):
            try:
                plan.ms += plan.run(device, 1)
            except Exception as error:
                plan.error = _failure(error)
    if device.type == "cuda" and len(group) == 1:
        group[0].peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
    for plan in group:
        plan.step = None
    del gans
    _free(device)


def benchmark(preset: str, batch: int, device: torch.device, iters: int, warmup: int,
              quick: bool, flops_per_iteration: int, peak_tflops: float | None, only=None,
              on_row=None) -> list[dict]:
    """One row per entry of `ROWS` (in `run_order(only)`) and `NOT_IN_TRAINING`; `on_row(row)` is
    called for each measured row as its group finishes (on a GPU: each row)."""
    runnable, skipped = plans(device, quick, only)
    # On a GPU each row runs alone (its memory peak is its own); on a CPU all rows interleave.
    groups = [[p] for p in runnable] if device.type == "cuda" else [runnable]
    done: dict[str, dict] = {}
    for group in groups:
        run_group(group, preset, batch, device, iters, warmup)
        for plan in group:
            done[plan.name] = result(plan, preset, batch, device, flops_per_iteration,
                                     peak_tflops, done.get("baseline"))
            if on_row is not None:
                on_row(done[plan.name])
    rows = []
    for name in run_order(only) + list(NOT_IN_TRAINING):
        rows.append(done.get(name) or {"row": name, "preset": preset, "batch": batch,
                                       **skipped[name]})
    return rows


def result(plan: Plan, preset, batch, device, flops_per_iteration, peak_tflops, base) -> dict:
    """The row of a plan that ran: its timings, or how it failed; `base` the baseline's row."""
    row = {"row": plan.name, "preset": preset, "batch": batch,
           "levers": dataclasses.asdict(plan.levers),
           "attention_path": attention_path(plan.levers, device), "note": plan.note,
           "off_here": plan.off_reasons, "first_iteration_s": plan.first_iteration_s}
    if plan.error is not None or not plan.ms:
        return {**row, "status": plan.error or "failed: no iteration timed"}
    ms = statistics.median(plan.ms)
    quartiles = statistics.quantiles(plan.ms, n=4) if len(plan.ms) > 1 else [ms, ms, ms]
    it_s = 1e3 / ms
    tflop_s = flops_per_iteration * it_s / 1e12
    row.update(status="ok", iterations=len(plan.ms), ms=ms, ms_mean=statistics.fmean(plan.ms),
               ms_quartiles=[quartiles[0], quartiles[2]], it_s=it_s, images_s=it_s * batch,
               peak_mib=plan.peak_mib,
               tflop_s=tflop_s, mfu=None if peak_tflops is None else tflop_s / peak_tflops)
    if plan.name == "baseline":
        row["x_baseline"] = 1.0
    elif base is not None and base["status"] == "ok":
        row["x_baseline"] = it_s / base["it_s"]
    if plan.fallbacks:  # timed, but not what the row names
        row.update(status="fallback", note=fallbacks.note(plan.fallbacks))
    return row


def format_table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table."""
    header = (f"{'row':24} {'attention':9} {'ms/it':>9} {'quartiles':>13} {'it/s':>8} "
              f"{'images/s':>9} {'x base':>7} {'peak MiB':>9} {'TFLOP/s':>8} {'MFU':>6} "
              f"{'1st it s':>8}  note")
    lines = [header, "-" * len(header)]
    for r in rows:
        start = f"{r['row']:24} {r.get('attention_path', ''):9} "
        if r["status"] != "ok":
            lines.append(start + f"{r['status']}: {r.get('note', '')}".rstrip(": "))
            continue
        peak = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        mfu = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        ratio = f"{r['x_baseline']:.2f}" if "x_baseline" in r else "-"
        q1, q3 = r["ms_quartiles"]
        lines.append(start + f"{r['ms']:9.1f} {q1:6.0f}-{q3:<6.0f} {r['it_s']:8.2f} "
                     f"{r['images_s']:9.1f} {ratio:>7} "
                     f"{peak:>9} {r['tflop_s']:8.3f} {mfu:>6} {r['first_iteration_s']:8.1f}  "
                     f"{r['note']}".rstrip())
    return "\n".join(lines)
