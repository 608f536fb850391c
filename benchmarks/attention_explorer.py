"""The data of the attention explorer (docs/attention-explorer.md): a dozen samples of the trained
model, three per class, and every query's attention map in G's and D's attention layers.

    python benchmarks/attention_explorer.py

reads `docs/trained/mirror-twins.pt` and writes `docs/trained/attention-explorer.json`: the
samples' pixels (R x R x 3 bytes, row-major), and per sample and layer the map of each of the
side x side queries over the side_k x side_k keys (`beta[j][i]` of eq. 1, whole numbers in units
of `UNIT`, so a row sums to about 1 / UNIT; positions row-major). G's maps come from drawing the
samples, D's from D judging those same samples with the class they were drawn for. The maps are
read the way the course's attention figures read them (`recording` and `last_attention`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from accelerated import figures
from accelerated.checkpoint import CheckpointError, load_generator
from accelerated.data.builtin import CLASS_NAMES
from accelerated.metrics.twins import twin_attention
from accelerated.models import build_models, named_attention_layers
from accelerated.training.attention_report import recording

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "docs" / "trained" / "mirror-twins.pt"
OUT = ROOT / "docs" / "trained" / "attention-explorer.json"
COMMAND = "python benchmarks/attention_explorer.py"
PER_CLASS = 3
SEED = 2026
UNIT = 1e-4  # of the stored weights: enough for a colour and a percentage, small for a page


def explore(model: Path) -> dict:
    """The explorer's data for the trained model at `model` (see the module's docstring)."""
    cpu = torch.device("cpu")
    G, cfg, _ = load_generator(model, cpu)
    state = torch.load(model, map_location=cpu, weights_only=True)
    D = build_models(cfg)[1]
    D.load_state_dict(state["D"])
    D.eval()
    layers = named_attention_layers(G, D, cfg)
    y = torch.arange(cfg.num_classes).repeat_interleave(PER_CLASS)
    z = torch.randn(len(y), cfg.z_dim, generator=torch.Generator().manual_seed(SEED))
    with torch.no_grad(), recording(layers.values()):
        images = G(z, y)
        D(images, y)
        maps = {name: layer.last_attention for name, layer in layers.items()}
    pixels = figures.to_uint8(images)  # (B, R, R, 3)
    first = next(iter(maps.values()))
    return {
        "command": COMMAND,
        "model": model.relative_to(ROOT).as_posix() if model.is_relative_to(ROOT) else str(model),
        "step": int(state["step"]),
        "seed": SEED,
        "resolution": cfg.resolution,
        "query_side": math.isqrt(first.shape[1]),
        "key_side": math.isqrt(first.shape[2]),
        "classes": list(CLASS_NAMES[: cfg.num_classes]),
        "gamma": {name: round(layer.gamma.item(), 4) for name, layer in layers.items()},
        "weight_unit": UNIT,
        "largest": {name: round(beta.max().item(), 4) for name, beta in maps.items()},
        "twin": {
            name: {k: round(v, 4) for k, v in twin_attention(images, beta).items()}
            for name, beta in maps.items()
        },
        "samples": [
            {
                "label": int(y[b]),
                "pixels": pixels[b].reshape(-1).tolist(),
                "attention": {
                    name: (beta[b] / UNIT).round().int().tolist() for name, beta in maps.items()
                },
            }
            for b in range(len(y))
        ],
    }


def dumps(data: dict) -> str:
    """The JSON text, one line per sample (a reviewable diff when the model changes)."""
    head = {k: v for k, v in data.items() if k != "samples"}
    samples = ",\n  ".join(json.dumps(s, separators=(",", ":")) for s in data["samples"])
    return json.dumps(head, indent=1)[:-2] + f',\n "samples": [\n  {samples}\n ]\n}}\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=MODEL, help=f"default: {MODEL.name}")
    parser.add_argument("--out", type=Path, default=OUT, help="default: docs/trained/" + OUT.name)
    args = parser.parse_args()
    if not args.model.is_file():
        sys.exit(f"no trained model at {args.model}: give one with --model")
    try:
        text = dumps(explore(args.model.resolve()))
    except CheckpointError as err:
        sys.exit(f"cannot read the model {args.model}: {err}")
    try:
        args.out.write_text(text)
    except OSError as err:
        sys.exit(f"cannot write {args.out}: {err.strerror}; give a writable --out")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
