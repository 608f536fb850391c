"""`python -m accelerated.bench step|flops|data|eval|attention|sn|registers|gpu-check`: time,
print a table, save JSON.

    python -m accelerated.bench step                      # 128x128 training step, B = 256, CUDA
    python -m accelerated.bench step --device cpu --preset builtin   # the CPU comparison
    python -m accelerated.bench flops                     # model FLOPs per iteration, it/s at 40%
    python -m accelerated.bench data --preset imagenet128 # loader images/s vs the step's appetite
    python -m accelerated.bench eval                      # 50k-sample FID: generation + features
    python -m accelerated.bench attention                 # SPEC section 6 shapes, on CUDA
    python -m accelerated.bench sn                        # SN of the whole 128x128 G and D
    python -m accelerated.bench attention --device cpu --quick   # tiny shapes, runs anywhere
    python -m accelerated.bench gpu-check                 # GPU tests + all of the above, 8 min
    python -m accelerated.bench gpu-check --dry-run       # its plan, checked on any machine
    python -m accelerated.bench registers                 # ptxas: kernels' registers, spills

Results go to benchmarks/results/<benchmark>-<device>-<time>.json with the device name, the
library versions, the command line and, under `kernels`, the attributes of each CuPy kernel the
run compiled, as the device reports them (registers, shared memory, spills); rewritten as each
row finishes (a crash keeps what was measured). Rows that need a CUDA GPU (or CuPy) are listed
as not run elsewhere; a row that fails says how, and the others still run.
`python -m accelerated.bench BENCHMARK --help` lists each one's flags.
"""

import json
import sys

import torch

from accelerated.bench import attention, gpu_check, registers, spectral_norm
from accelerated.bench.parser import DTYPES, PROG, make_parser
from accelerated.bench.results import Results
from accelerated.bench.timing import environment
from accelerated.cli import UserError, run
from accelerated.kernels.cupy_module import kernel_attributes


def check_device(name: str) -> torch.device:
    if name.split(":")[0] not in ("cuda", "cpu"):
        raise ValueError(f"--device must be cuda or cpu, got {name!r}")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("no CUDA device here: run with --device cpu --quick")
    return device


def run_attention(args, device, on_row):
    reps = args.reps or (3 if args.quick else 20)
    sizes = args.sizes or ([8] if args.quick else [32, 64])
    batches = args.batches or ([2] if args.quick else [64, 256])
    rows = attention.benchmark(sizes, batches, device, DTYPES[args.dtype], reps, on_row)
    return rows, attention.format_table(rows), {}, kernel_notes(rows)


def run_sn(args, device, on_row):
    from accelerated.models import ModelConfig

    cfg = ModelConfig(resolution=32, num_classes=10) if args.quick else ModelConfig()
    rows = spectral_norm.benchmark(cfg, device, args.reps or (3 if args.quick else 20), on_row)
    return rows, spectral_norm.format_table(rows), {}, kernel_notes(rows)


def kernel_notes(rows: list[dict]) -> list[str]:
    """What the table's CuPy rows are: fallbacks, not measured here, or (no note) the kernels."""
    statuses = {r["status"] for r in rows if r["impl"] == "cupy"}
    if "fallback" in statuses:
        return ["CuPy rows marked fallback timed PyTorch where a kernel did not run (see their "
                "notes): they are not the kernel's times."]
    if "ok" in statuses:
        return []
    return ["CuPy kernel rows need a CUDA GPU and CuPy: they were not measured here."]


def run_step(args, device, on_row):
    from accelerated.bench import flops, peak, step
    from accelerated.bench.trainer import config

    preset = args.preset or ("tiny" if args.quick else "imagenet128")
    batch = args.batch or config(preset).optim.batch_size
    iters = args.iters or (2 if args.quick else 20)
    warmup = args.warmup or (1 if args.quick else 3)
    if args.peak_tflops is not None and (device.type != "cuda" or args.peak_tflops <= 0):
        raise ValueError("--peak-tflops takes a GPU's positive dense bf16 TFLOP/s, with "
                         "--device cuda")
    found = peak.bf16_peak(environment(device)["device"]) if device.type == "cuda" else None
    peak_tflops, part = (args.peak_tflops, "--peak-tflops") if args.peak_tflops else (
        found or (None, None))
    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = sorted(set(args.rows or []) - set(step.ROWS))
    if unknown:
        raise ValueError(f"--rows: no row named {unknown[0]!r}; the rows are {list(step.ROWS)}")
    counted = flops.summary(preset, batch)
    rows = step.benchmark(preset, batch, device, iters, warmup, args.quick,
                          counted["flops_per_iteration"], peak_tflops, args.rows, on_row)
    extra = {"preset": preset, "batch": batch, "iters": iters, "warmup": warmup, **counted,
             "peak_bf16_tflops": peak_tflops, "peak_part": part}
    notes = [f"model FLOPs per iteration (counted, B = {batch}): "
             f"{counted['flops_per_iteration'] / 1e12:.4g} TFLOP; cost model (4 F_G + 8 F_D) B "
             f"with counted forwards: {counted['cost_model_per_iteration'] / 1e12:.4g} TFLOP"]
    if peak_tflops is None:
        notes.append("MFU: n/a (no bf16 peak for this device; on a GPU missing from the table "
                     "pass --peak-tflops)")
    else:
        notes.append(f"MFU against {part}: {peak_tflops:g} TFLOP/s dense bf16")
    if device.type != "cuda":
        notes.append("CPU timings: rows marked 'needs CUDA' are GPU levers, still to be measured "
                     "on a GPU; quote ratios, not absolute figures.")
    return rows, step.format_table(rows), extra, notes


def run_flops(args, device, on_row):
    from accelerated.bench import flops, peak
    from accelerated.bench.trainer import config

    if not 0 < args.mfu <= 1:
        raise ValueError(f"--mfu takes a fraction in (0, 1], got {args.mfu}")
    batch = args.batch or config(args.preset).optim.batch_size
    counted = flops.summary(args.preset, batch)
    rows = flops.at_mfu(counted["flops_per_iteration"], batch, peak.PEAKS, args.mfu)
    extra = {"preset": args.preset, "batch": batch, **counted}
    return rows, flops.format_table(counted, rows, batch), extra, [
        "counted on the CPU; the it/s columns are what the GPU would run at that utilisation, "
        "not measurements"]


def run_data(args, device, on_row):
    from accelerated.bench import data
    from accelerated.bench.trainer import config

    if any(w < 0 for w in args.workers or []):
        raise ValueError("--workers takes worker counts >= 0")
    if args.step_json is not None and not args.step_json.is_file():
        raise ValueError(f"--step-json {args.step_json} is not a file")
    cfg = config(args.preset)
    workers = args.workers or sorted({0, cfg.data.workers})
    count = args.count or (3 * cfg.optim.batch_size if args.quick else 4096)
    rows, settings = data.benchmark(args.preset, count, workers, 1 if args.quick else args.repeats)
    step_json = args.step_json or data.newest_step_result(args.out, args.preset)
    record = None if step_json is None else json.loads(step_json.read_text())
    comparison = data.compare(rows, settings, record)
    notes = [f"compared with {step_json}" if record else
             f"no `bench step` result of preset {args.preset} in {args.out}: run "
             f"`{PROG} step --preset {args.preset}` on the training machine to compare"]
    extra = {**settings, "step_result": None if step_json is None else str(step_json),
             "appetite": comparison}
    return rows, data.format_table(rows, settings, comparison), extra, notes


def run_eval(args, device, on_row):
    from accelerated.bench import eval_speed

    preset = args.preset or ("tiny" if args.quick else "imagenet128")
    n = args.num_samples or (512 if args.quick else 50_000)
    if args.inception_weights is not None and args.metrics != "inception":
        raise ValueError("--inception-weights only applies with --metrics inception")
    rows, settings = eval_speed.benchmark(preset, n, args.batch, device, args.metrics,
                                          args.inception_weights)
    notes = [] if args.metrics == "inception" else [
        "features: the offline random network; pass --metrics inception for the standard FID "
        "Inception (the FID the paper reports), which costs more per image"]
    return rows, eval_speed.format_table(rows, settings), settings, notes


RUNNERS = {"attention": run_attention, "sn": run_sn, "step": run_step, "flops": run_flops,
           "data": run_data, "eval": run_eval}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = make_parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a bad command line, reported in one line (2)
        return exit_.code
    args.command = f"{PROG} " + " ".join(argv)
    return run(PROG, lambda: benchmark(args), exit_codes={ValueError: 1, ImportError: 1})


def benchmark(args) -> int:
    """Run the benchmark `args` name, print its table, write its results (or gpu-check's)."""
    if args.benchmark == "gpu-check":
        return gpu_check.main(args)
    if args.benchmark == "registers":  # compiles only: no device
        return registers.main(args)
    device = check_device(args.device)
    results = Results(args.out, args.benchmark, args.command, environment(device))

    def add(row):  # each row, with the attributes of the kernels compiled so far
        results.add(row, {"kernels": kernel_attributes()})

    try:
        rows, table, extra, notes = RUNNERS[args.benchmark](args, device, add)
    except RuntimeError as error:  # a CUDA or CuPy failure outside any one row
        raise UserError(str(error), exit_code=1) from None
    path = results.finish(rows, {**extra, "kernels": kernel_attributes()})
    print(table)
    for note in notes:
        print(f"\n{note}")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
