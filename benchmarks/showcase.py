"""The trained model the course shows: from a finished default run, write its weights (weights
only, a few MB), its sample grids, its learned attention (G on its samples, D on real images) and
its curves into a folder of the docs.

    python benchmarks/showcase.py runs/<name> docs/trained

Writes `OUT/mirror-twins.pt` (loadable with `torch.load(weights_only=True)`, and by
`python -m accelerated.sample OUT/mirror-twins.pt`), `OUT/samples-step-<k>.png` for every grid
the run saved, `OUT/attention-G<size>.png` and `OUT/attention-D<size>.png`, `OUT/curves.png` and
`OUT/quality.json` (the quality of 2,000 fresh samples, and the twin attention per layer).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from accelerated import checkpoint, figures
from accelerated import config as C
from accelerated.data import builtin
from accelerated.data.arrays import to_model_range
from accelerated.figures import curves
from accelerated.models import build_models, named_attention_layers
from accelerated.training.attention_report import recording, twin_report

SAMPLES = 2000
FIGURE_IMAGES = 4  # one per class


def weights(state: dict) -> dict:
    """A checkpoint reduced to what drawing samples and attention maps needs: the sampling
    generator's weights (the EMA when the run kept one), D's, the config and the step."""
    G = state["G_ema"] if state.get("G_ema") is not None else state["G"]
    config = {**state["config"], "optim": {**state["config"]["optim"], "ema": False}}
    return {"format_version": state["format_version"], "step": state["step"], "config": config,
            "G": G, "G_ema": None, "D": state["D"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished run folder of the builtin preset")
    parser.add_argument("out", type=Path, help="folder to write into (e.g. docs/trained)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path, state = checkpoint.latest(args.run)
    small = weights(state)
    torch.save(small, args.out / "mirror-twins.pt")

    cfg = C.from_dict(small["config"]).model
    G, D = build_models(cfg)
    G.load_state_dict(small["G"])
    D.load_state_dict(small["D"])
    G.eval()
    D.eval()
    gen = torch.Generator().manual_seed(2026)
    z = torch.randn(SAMPLES, cfg.z_dim, generator=gen)
    y = torch.arange(SAMPLES) % cfg.num_classes
    with torch.no_grad():
        images = G(z, y)
    found = builtin.quality(images, y)
    layers = named_attention_layers(G, D, cfg)
    real_np, real_y = builtin.generate(256, cfg.resolution, seed=2026)
    real = torch.from_numpy(to_model_range(real_np))  # (B, 3, R, R) in [-1, 1]
    real_y = torch.from_numpy(real_y)
    with torch.no_grad():
        found.update(twin_report(layers, lambda z_, y_: G(z_, y_), z[:256], y[:256], D, real,
                                 real_y))
    (args.out / "quality.json").write_text(json.dumps(
        {"checkpoint": path.name, "step": state["step"], "samples": SAMPLES, **found}, indent=1))

    # Attention: one image per class, G on its samples, D on real images.
    picks = [int((y == k).nonzero()[0]) for k in range(cfg.num_classes)][:FIGURE_IMAGES]
    real_picks = [int((real_y == k).nonzero()[0]) for k in range(cfg.num_classes)][:FIGURE_IMAGES]
    for name, layer in layers.items():
        shown = images[picks] if name.startswith("G") else real[real_picks]
        with torch.no_grad(), recording([layer]):
            if name.startswith("G"):
                G(z[picks], y[picks])
            else:
                D(shown, real_y[real_picks])
            beta = layer.last_attention
        figures.attention_figure(shown, beta, scale=12).save(args.out / f"attention-{name}.png")

    for grid in sorted((args.run / "samples").glob("step-*.png")):
        shutil.copy(grid, args.out / f"samples-{grid.name}")
    shutil.copy(args.run / curves.FILE, args.out / curves.FILE)  # drawn at the last evaluation
    print(json.dumps(found, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
