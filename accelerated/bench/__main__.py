"""`python -m accelerated.bench attention|sn`: time the hot spots, print a table, save JSON.

    python -m accelerated.bench attention                 # SPEC section 6 shapes, on CUDA
    python -m accelerated.bench sn                        # SN of the whole 128x128 G and D
    python -m accelerated.bench attention --device cpu --quick   # tiny shapes, runs anywhere

Results go to benchmarks/results/<benchmark>-<device>-<time>.json with the device name, the
library versions and the command line. The CuPy rows need a CUDA GPU and CuPy; elsewhere they
are listed as not run.
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

import torch

from accelerated.bench import attention, spectral_norm
from accelerated.bench.timing import environment

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m accelerated.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("benchmark", choices=("attention", "sn"))
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few repetitions")
    parser.add_argument("--reps", type=int, default=None, help="timed runs per row (median)")
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="float32",
        help="attention inputs' dtype (default float32)",
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=None,
        help="attention feature-map sizes (default 32 64; --quick: 8)",
    )
    parser.add_argument(
        "--batches",
        type=int,
        nargs="+",
        default=None,
        help="attention batch sizes (default 64 256; --quick: 2)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results"),
        help="folder for the JSON results (default benchmarks/results)",
    )
    return parser.parse_args(argv)


def run(args) -> tuple[list[dict], str]:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("no CUDA device here: run with --device cpu --quick")
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"--device must be cuda or cpu, got {args.device!r}")
    reps = args.reps or (3 if args.quick else 20)
    if args.benchmark == "attention":
        sizes = args.sizes or ([8] if args.quick else [32, 64])
        batches = args.batches or ([2] if args.quick else [64, 256])
        rows = attention.benchmark(sizes, batches, device, DTYPES[args.dtype], reps)
        return rows, attention.format_table(rows)
    from accelerated.models import ModelConfig

    cfg = ModelConfig(resolution=32, num_classes=10) if args.quick else ModelConfig()
    rows = spectral_norm.benchmark(cfg, device, reps)
    return rows, spectral_norm.format_table(rows)


def save(args, rows: list[dict]) -> Path:
    env = environment(torch.device(args.device))
    device_slug = re.sub(r"[^a-z0-9]+", "-", str(env["device"]).lower()).strip("-") or "device"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.benchmark}-{device_slug}-{stamp}.json"
    record = {
        "benchmark": args.benchmark,
        "command": args.command,
        "utc": stamp,
        **env,
        "rows": rows,
    }
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    args.command = "python -m accelerated.bench " + " ".join(argv)
    try:
        rows, table = run(args)
        path = save(args, rows)
    except (ValueError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(table)
    if not any(r["impl"] == "cupy" and r["status"] == "ok" for r in rows):
        print("\nCuPy kernel rows need a CUDA GPU and CuPy: they were not measured here.")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
