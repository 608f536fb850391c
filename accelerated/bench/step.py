r"""Benchmark of the whole training step: the plain baseline against the project's fast path.

Every row builds the project's real `Trainer` (`accelerated.training.loop`) for one preset and
times `Trainer.iteration` (one D step and one G step) on synthetic batches already on the device
(`accelerated.bench.trainer`), so data loading is not measured here (`bench data` is). Rows:

- `baseline`: the model as typical public PyTorch SAGANs run it: eager, float32, contiguous
  tensors, attention as `softmax(q k^T) v` with batched matrix products (the layer's readable
  path), PyTorch's spectral norm, `torch.optim.Adam` with PyTorch's default implementation;
- one lever at a time on top of the baseline: bf16 autocast (`run.bf16`), channels-last
  (`run.channels_last`), PyTorch's fused attention (SDPA), the CuPy kernels (attention and hinge
  losses), fused Adam, `torch.compile` (`run.compile`), and `torch.compile` with CUDA graphs
  (mode "reduce-overhead");
- `fast path`: all levers the Trainer has (bf16, channels-last, the backend's automatic kernel
  choice, fused Adam, compile), and the same with CUDA graphs.

Where the training code has no setting for a lever, the harness sets it on the built Trainer:
it swaps the Adam optimisers (fused or PyTorch's default, before any step), asks the attention
layers for their maps on CUDA (`store_attention`, which runs the readable path there; the maps are
dropped after each iteration) for the baseline attention, forces the backend with
`accelerated.backend.force_backend`, and wraps G and D in `torch.compile(mode="reduce-overhead")`
for CUDA graphs. A lever that cannot act on this device (bf16, channels-last and fused attention
are CUDA-only in the Trainer) is listed as not run, with the reason.

Each row warms up, then times single iterations (CUDA events on a GPU, so GPU work is measured;
every iteration ends with the Trainer's own host synchronisation). On a GPU the rows run one
after the other, each alone in memory; on a CPU all rows are built first and their iterations
interleaved, so a change in the machine's load hits every row alike.
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from accelerated.backend import cupy_usable, force_backend
from accelerated.bench.timing import times
from accelerated.bench.trainer import config, synthetic_batches, synthetic_trainer
from accelerated.models import attention_layers

ATTENTION_BACKENDS = {"naive": "torch", "sdpa": "torch", "cupy": "cupy", "auto": None}


@dataclass(frozen=True)
class Levers:
    """One row's settings; the defaults are the baseline."""

    bf16: bool = False
    channels_last: bool = False
    attention: str = "naive"  # "naive" (bmm-softmax-bmm), "sdpa", "cupy", "auto" (the backend's)
    fused_adam: bool = False
    compile: str | None = None  # None, "default" (run.compile), "reduce-overhead" (CUDA graphs)


BASELINE = Levers()
FAST = Levers(bf16=True, channels_last=True, attention="auto", fused_adam=True, compile="default")
ROWS = {
    "baseline": BASELINE,
    "bf16 autocast": Levers(bf16=True),
    "channels-last": Levers(channels_last=True),
    "SDPA attention": Levers(attention="sdpa"),
    "CuPy kernels": Levers(attention="cupy"),
    "fused Adam": Levers(fused_adam=True),
    "torch.compile": Levers(compile="default"),
    "compile + CUDA graphs": Levers(compile="reduce-overhead"),
    "fast path": FAST,
    "fast path + CUDA graphs": dataclasses.replace(FAST, compile="reduce-overhead"),
}
# Levers the training step cannot use yet: listed, never silently dropped.
NOT_IN_TRAINING = {
    "batched SN kernel": "the Trainer's layers use PyTorch's SN parametrization; no setting runs "
    "the batched power-iteration kernel in a training step (`bench sn` times it alone)",
}


def inactive(levers: Levers, device: torch.device, quick: bool) -> dict[str, tuple]:
    """The levers set in `levers` that cannot act on `device`: {field: (what it falls back to,
    "lever: why")}."""
    why = {}
    if device.type != "cuda":
        if levers.bf16:
            why["bf16"] = (False, "bf16 autocast: needs CUDA (the Trainer autocasts on CUDA only)")
        if levers.channels_last:
            why["channels_last"] = (False, "channels-last: needs CUDA (the Trainer uses it on "
                                           "CUDA only)")
        if levers.attention in ("sdpa", "cupy"):
            why["attention"] = ("naive", "fused attention: needs CUDA (on CPU the readable path "
                                         "runs)")
        if levers.compile == "reduce-overhead":
            why["compile"] = ("default", "CUDA graphs: needs CUDA")
    elif levers.attention == "cupy" and not cupy_usable():
        why["attention"] = ("naive", "CuPy kernels: need CuPy (pip install -e '.[cuda13]')")
    if quick and levers.compile:
        left_out = "torch.compile: left out by --quick (compiling takes minutes)"
        why["compile"] = (None, why["compile"][1] if "compile" in why else left_out)
    return why


def attention_path(levers: Levers, device: torch.device) -> str:
    """Which attention actually runs: "naive", "sdpa" or "cupy"."""
    if levers.attention == "naive" or device.type != "cuda":
        return "naive"
    if levers.attention == "auto":
        return "cupy" if cupy_usable() else "sdpa"
    return levers.attention


def set_adam(trainer, fused: bool) -> None:
    """Give the Trainer fused Adam optimisers, or PyTorch's default implementation, where it built
    the other kind (same parameters and hyper-parameters; before any step, so no state is lost)."""
    for name in ("opt_G", "opt_D"):
        opt = getattr(trainer, name)
        if bool(opt.defaults["fused"]) != fused:
            group = opt.param_groups[0]
            setattr(trainer, name, torch.optim.Adam(group["params"], lr=group["lr"],
                                                    betas=group["betas"], eps=group["eps"],
                                                    fused=True if fused else None))


def prepare(preset: str, batch: int, levers: Levers, device: torch.device, workdir: Path):
    """`(trainer, step)`: the Trainer built with `levers`, and a function running one iteration."""
    cfg = config(preset, batch, {"run.bf16": levers.bf16,
                                 "run.channels_last": levers.channels_last,
                                 "run.compile": levers.compile == "default"})
    trainer = synthetic_trainer(cfg, device, workdir)
    set_adam(trainer, levers.fused_adam)
    graphs = levers.compile == "reduce-overhead"
    if graphs:  # the Trainer's compile, in the mode that captures CUDA graphs
        def compiled(module):
            return torch.compile(module, mode="reduce-overhead")

        trainer.G_train, trainer.D_train = compiled(trainer.G_train), compiled(trainer.D_train)
        trainer.G_fake, trainer.D_score = compiled(trainer.G), compiled(trainer.D)
    # On CUDA the readable bmm-softmax-bmm path runs only when the layers are asked for their
    # maps; on a CPU it always runs, and asking would only change what torch.compile sees.
    naive = attention_layers(trainer.G) + attention_layers(trainer.D)
    naive = naive if levers.attention == "naive" and device.type == "cuda" else []
    for layer in naive:
        layer.store_attention = True
    backend = ATTENTION_BACKENDS[levers.attention]
    batches = synthetic_batches(cfg, device)

    def step():
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with force_backend(backend):
            trainer.iteration(batches)
        for layer in naive:
            layer.last_attention = None  # not kept across iterations

    return trainer, step


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
    error: str | None = None


def plans(device: torch.device, quick: bool) -> tuple[list[Plan], dict[str, dict]]:
    """The rows that can run here, and {name: row} of those that cannot (with why). A row runs
    with its levers that cannot act here turned off, unless what is left is the baseline or an
    earlier row (then it would measure nothing new)."""
    runnable, skipped = [], {}
    for name, levers in ROWS.items():
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


def _failure(error: Exception) -> str:
    if isinstance(error, torch.OutOfMemoryError):
        return "out of memory"
    return "failed: " + (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def _free(device: torch.device) -> None:
    gc.collect()
    torch._dynamo.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_group(group: list[Plan], preset, batch, device, iters: int, warmup: int, workdir) -> None:
    """Build and warm up every plan of `group`, then time `iters` iterations of each, interleaved
    (one iteration of each plan in turn); fills `ms`, `peak_mib` and `error`."""
    trainers = []
    for i, plan in enumerate(group):
        try:
            trainer, plan.step = prepare(preset, batch, plan.levers, device, Path(workdir) / str(i))
            trainers.append(trainer)
            times(plan.step, device, warmup)
        except (RuntimeError, ValueError) as error:
            plan.error, plan.step = _failure(error), None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(iters):
        for plan in (p for p in group if p.error is None):
            try:
                plan.ms += times(plan.step, device, 1)
            except (RuntimeError, ValueError) as error:
                plan.error = _failure(error)
    if device.type == "cuda" and len(group) == 1:
        group[0].peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
    for plan in group:
        plan.step = None
    del trainers
    _free(device)


def benchmark(preset: str, batch: int, device: torch.device, iters: int, warmup: int,
              quick: bool, flops_per_iteration: int, peak_tflops: float | None) -> list[dict]:
    """One row per entry of `ROWS` and `NOT_IN_TRAINING`, in that order."""
    runnable, skipped = plans(device, quick)
    # On a GPU each row runs alone (its memory peak is its own); on a CPU all rows interleave.
    groups = [[p] for p in runnable] if device.type == "cuda" else [runnable]
    with tempfile.TemporaryDirectory() as workdir:
        for k, group in enumerate(groups):
            run_group(group, preset, batch, device, iters, warmup, Path(workdir) / str(k))
    done = {p.name: p for p in runnable}
    rows = []
    for name in list(ROWS) + list(NOT_IN_TRAINING):
        row = {"row": name, "preset": preset, "batch": batch}
        if name in skipped:
            rows.append({**row, **skipped[name]})
            continue
        plan = done[name]
        row.update(levers=dataclasses.asdict(plan.levers),
                   attention_path=attention_path(plan.levers, device), note=plan.note,
                   off_here=plan.off_reasons)
        if plan.error is not None:
            rows.append({**row, "status": plan.error})
            continue
        ms = statistics.median(plan.ms)
        quartiles = statistics.quantiles(plan.ms, n=4) if len(plan.ms) > 1 else [ms, ms, ms]
        it_s = 1e3 / ms
        tflop_s = flops_per_iteration * it_s / 1e12
        rows.append({**row, "status": "ok", "iterations": len(plan.ms), "ms": ms,
                     "ms_quartiles": [quartiles[0], quartiles[2]], "it_s": it_s,
                     "images_s": it_s * batch, "peak_mib": plan.peak_mib, "tflop_s": tflop_s,
                     "mfu": None if peak_tflops is None else tflop_s / peak_tflops})
    base = rows[0]
    for row in rows:
        if row["status"] == "ok" and base["status"] == "ok":
            row["x_baseline"] = row["it_s"] / base["it_s"]
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table."""
    header = (f"{'row':24} {'attention':9} {'ms/it':>9} {'quartiles':>13} {'it/s':>8} "
              f"{'images/s':>9} {'x base':>7} {'peak MiB':>9} {'TFLOP/s':>8} {'MFU':>6}  note")
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
                     f"{peak:>9} {r['tflop_s']:8.3f} {mfu:>6}  {r['note']}".rstrip())
    return "\n".join(lines)
