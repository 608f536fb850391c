"""Does the EMA of G help? Score the raw generator and its EMA from the same checkpoints.

An EMA changes only which generator is evaluated, not how the run trains, so each EMA run's final
checkpoint holds both generators of one training run: a paired comparison. Both are measured the
way the run's own evaluation measures (the same fixed noise, classes balanced, `eval_samples`
samples, the built-in quality measure), so the EMA's numbers equal the run's last "eval" record.

    python benchmarks/raw_generator.py /work/recipe/runs/ttur-2x-ema-seed*
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from accelerated import checkpoint
from accelerated import config as C
from accelerated.data import builtin
from accelerated.models import Generator, generate
from accelerated.training.observe import NOISE_EVAL, fixed_noise

KEYS = ("score", "diversity", "agreement", "well_formed", "symmetry")


def scores(run: Path) -> dict[str, dict[str, float]]:
    """{"G": quality, "G_ema": quality} of the run's newest checkpoint."""
    _, state = checkpoint.latest(run)
    cfg = C.from_dict(state["config"])
    n = cfg.run.eval_samples
    classes = torch.arange(n) % cfg.model.num_classes
    z, y = fixed_noise(cfg, torch.device("cpu"), NOISE_EVAL, n, classes)
    found = {"step": state["step"]}
    for key in ("G", "G_ema"):
        G = Generator(cfg.model)
        G.load_state_dict(state[key])
        quality = builtin.quality(generate(G, z, y), y)
        found[key] = {k: quality[k] for k in KEYS}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders trained with optim.ema")
    args = parser.parse_args()
    results = {run.name: scores(run) for run in args.runs}
    print(json.dumps(results, indent=1))
    for key in KEYS:
        raw = [r["G"][key] for r in results.values()]
        ema = [r["G_ema"][key] for r in results.values()]
        print(f"{key}: raw G {', '.join(f'{v:.3f}' for v in raw)} | EMA "
              f"{', '.join(f'{v:.3f}' for v in ema)}")


if __name__ == "__main__":
    main()
