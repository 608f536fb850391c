"""The command line of `python -m accelerated.bench`: its subcommands and their flags (the
benchmarks' own module docstrings say what each measures)."""

from pathlib import Path

import torch

from accelerated.cli import Parser, positive

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
PROG = "python -m accelerated.bench"


def common(parser, device: str = "cuda") -> None:
    parser.add_argument("--device", default=device, help=f"cuda or cpu (default {device})")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repetitions")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="folder for the JSON results (default benchmarks/results)")


def make_parser() -> Parser:
    parser = Parser(prog=PROG, description="Benchmarks: time, print a table, save JSON.")
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")

    p = sub.add_parser("attention", help="the attention core: naive, each SDPA backend, CuPy")
    common(p)
    p.add_argument("--reps", type=positive, default=None, help="timed runs per row (median)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32",
                   help="inputs' dtype (default float32)")
    p.add_argument("--sizes", type=positive, nargs="+", default=None,
                   help="feature-map sizes (default 32 64; --quick: 8)")
    p.add_argument("--batches", type=positive, nargs="+", default=None,
                   help="batch sizes (default 64 256; --quick: 2)")

    p = sub.add_parser("sn", help="spectral norm of every SN layer: PyTorch vs one CuPy launch")
    common(p)
    p.add_argument("--reps", type=positive, default=None, help="timed runs per row (median)")

    p = sub.add_parser("step", help="training iterations/s: baseline, each lever, fast path")
    common(p)
    p.add_argument("--preset", default=None,
                   help="training preset (default imagenet128; --quick: tiny)")
    p.add_argument("--batch", type=positive, default=None,
                   help="global batch (default: the preset's, 256 for imagenet128)")
    p.add_argument("--iters", type=positive, default=None,
                   help="timed iterations per row (default 20; --quick: 2)")
    p.add_argument("--warmup", type=positive, default=None,
                   help="untimed iterations per row first (default 3; --quick: 1)")
    p.add_argument("--threads", type=positive, default=None,
                   help="torch CPU threads (default: torch's; 1 steadies timings on a busy CPU)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the GPU's dense bf16 peak, for a GPU missing from the built-in table")
    p.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                   help="run only these rows (names as in the table, e.g. 'fast path')")

    p = sub.add_parser("flops", help="counted model FLOPs per iteration, it/s at an MFU per GPU")
    p.add_argument("--preset", default="imagenet128", help="training preset (default imagenet128)")
    p.add_argument("--batch", type=positive, default=None,
                   help="global batch (default: the preset's, 256 for imagenet128)")
    p.add_argument("--mfu", type=float, default=0.4, help="utilisation to convert (default 0.4)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                   help="folder for the JSON results (default benchmarks/results)")
    p.set_defaults(device="cpu")  # the count always runs on the CPU

    p = sub.add_parser("data", help="loader images/s from a prepared array file vs the step")
    common(p, device="cpu")
    p.add_argument("--preset", default="imagenet128",
                   help="resolution, batch and loader workers of this preset (default imagenet128)")
    p.add_argument("--count", type=positive, default=None,
                   help="random images in the array file (default 4096; --quick: 3 batches)")
    p.add_argument("--workers", type=int, nargs="+", default=None,
                   help="DataLoader worker counts to time (default: 0 and the preset's)")
    p.add_argument("--repeats", type=positive, default=2, help="passes per way (best of)")
    p.add_argument("--step-json", type=Path, default=None,
                   help="a `bench step` result to compare with (default: the newest of the "
                   "preset in --out)")

    p = sub.add_parser("eval", help="time of an N-sample FID: generation + features")
    common(p)
    p.add_argument("--preset", default=None,
                   help="the generator of this preset (default imagenet128; --quick: tiny)")
    p.add_argument("--num-samples", type=positive, default=None,
                   help="samples (default 50000; --quick: 512)")
    p.add_argument("--batch", type=positive, default=256, help="images per batch (default 256)")
    p.add_argument("--metrics", choices=("offline", "inception"), default="offline",
                   help="feature network: offline random features (default), or the standard "
                   "FID Inception")
    p.add_argument("--inception-weights", default=None, metavar="PATH",
                   help="torch-fidelity's Inception weights: add its Inception Score "
                   "(--metrics inception)")

    p = sub.add_parser("registers", help="attention kernels' registers and spills from ptxas "
                       "(nvcc, no GPU)")
    p.add_argument("--arch", choices=("sm_80", "sm_90"), default="sm_90",
                   help="GPU architecture to compile for (default sm_90: H100, H200)")
    p.add_argument("--dtypes", choices=sorted(DTYPES), nargs="+", default=["float32", "bfloat16"],
                   help="the kernels' storage dtypes (default both)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                   help="folder for the JSON results (default benchmarks/results)")

    p = sub.add_parser("gpu-check", help="the GPU tests and every benchmark, in 8 minutes")
    common(p)
    p.add_argument("--dry-run", action="store_true",
                   help="check the plan (command lines, presets, shapes, time budget) and print "
                   "it; runs nothing")
    return parser
