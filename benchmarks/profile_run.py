"""Where a training run's minutes go: `python -m accelerated.train` under cProfile, its wall time
split into the GAN steps, the evaluations (and inside them: the quality and FID of the samples,
the twin attention, the curves), the sample and attention figures, logging, checkpoints and
start-up; then one GAN step split by kind of operation (torch.profiler over synthetic
iterations of the same model and batch).

    python benchmarks/profile_run.py OUT.json [TRAIN ARGUMENTS ...]

With no training arguments it profiles the default run, `python -m accelerated.train`, as on a
new machine (an empty cache, so the run computes its FID reference itself). cProfile
slows Python-heavy parts a little; the shares are what matters, and the total is printed beside
the run's own clock.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

import torch

from accelerated import train
from accelerated.bench.timing import environment
from accelerated.bench.trainer import config, synthetic_gan, synthetic_step

# (key, file, function) of the parts of a run, as cProfile names them: the GAN steps, the
# evaluations (inside them: quality and FID of the samples, twin attention, the curves figure),
# the sample and attention figures, logging, checkpoints, and the training loop as a whole
PARTS = (
    ("gan_steps", "training/run.py", "iteration"),
    ("evaluations", "training/observe.py", "evaluate"),
    ("evaluation_quality_and_fid", "training/periodic_eval.py", "measure"),
    ("evaluation_twin_attention", "training/observe.py", "twin_attention"),
    ("evaluation_curves_figure", "figures/curves.py", "draw"),
    ("figures", "training/observe.py", "write_figures"),
    ("logging", "training/metrics_log.py", "write"),
    ("checkpoints", "training/run.py", "save"),
    ("training_loop", "training/run.py", "train"),
)
# Kinds of operation in one GAN step, by the name of the aten operator (self time):
# convolutions forward and backward; attention's products, softmax and key pooling; spectral
# norm's power iteration; batch norm; average pooling and upsampling
KINDS = (
    ("convolutions", ("convolution",)),
    ("attention", ("bmm", "softmax", "max_pool2d")),
    ("spectral_norm", ("mv", "addmv", "linalg_vector_norm", "dot")),
    ("batch_norm", ("batch_norm",)),
    ("resampling", ("avg_pool2d", "upsample")),
)
OTHER = "other"  # the optimiser, activations, copies


def run_parts(argv: list[str]) -> dict:
    """Profile one training run; seconds per part and the whole."""
    profiler = cProfile.Profile()
    start = time.perf_counter()
    status = profiler.runcall(train.main, argv)
    wall = time.perf_counter() - start
    if status:
        raise SystemExit(f"the training run failed (exit status {status})")
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    seconds, calls = {}, {}
    for key, file, name in PARTS:
        found = [v for (f, _, n), v in stats.items() if f.endswith(file) and n == name]
        seconds[key] = round(sum(v[3] for v in found), 2)
        calls[key] = sum(v[1] for v in found)
    seconds["start_up_and_the_rest"] = round(wall - seconds["training_loop"], 2)
    return {"wall_seconds": round(wall, 2), "seconds": seconds, "calls": calls}


def step_kinds(preset: str, overrides: dict, iterations: int = 10) -> dict:
    """Milliseconds of self CPU time per GAN iteration for each kind of operation."""
    cfg = config(preset, overrides={**overrides, "run.device": "cpu"})
    step = synthetic_step(synthetic_gan(cfg, torch.device("cpu")))
    for _ in range(3):
        step()
    with torch.profiler.profile() as prof:
        for _ in range(iterations):
            step()
    events = [(e.key.removeprefix("aten::"), e.self_cpu_time_total / 1e3 / iterations)
              for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(ms for _, ms in events)
    kinds = dict.fromkeys([label for label, _ in KINDS] + [OTHER], 0.0)
    for op, ms in events:  # each operator counts once, in the first kind that names it
        kinds[next((label for label, names in KINDS if any(n in op for n in names)), OTHER)] += ms
    kinds = {label: round(ms, 1) for label, ms in kinds.items()}
    return {"ms_per_iteration": round(total, 1), "ms": kinds}


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    with tempfile.TemporaryDirectory() as tmp:
        # a fresh cache, as on a new machine: the FID reference is computed inside the run
        parts = run_parts([*argv, "--run.out_dir", tmp, "--data.cache_dir", f"{tmp}/cache",
                           "--run.progress", "false"])
    overrides = {}
    for flag, value in zip(argv[::2], argv[1::2], strict=False):
        if flag.startswith("--") and "." in flag:
            overrides[flag[2:]] = value
    kinds = step_kinds("builtin", overrides)
    result = {"command": "python -m accelerated.train " + " ".join(argv),
              "environment": environment(torch.device("cpu")), "run": parts, "step": kinds}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"run": parts, "step": kinds}, indent=1))


if __name__ == "__main__":
    main()
