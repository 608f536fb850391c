r"""The command line of `python -m accelerated.ablation.probe` (see the package docstring)."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shlex
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from accelerated import cli, host
from accelerated.ablation import workers
from accelerated.ablation.probe import report
from accelerated.ablation.probe.model import receptive_field
from accelerated.ablation.probe.train import Settings, run
from accelerated.cli import Parser, positive

PROG = "python -m accelerated.ablation.probe"


def depths(text: str) -> list[int]:
    """argparse type of --blocks: positive whole numbers separated by commas, sorted."""
    try:
        found = sorted({int(b) for b in text.split(",")})
    except ValueError:
        found = []
    if not found or found[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive whole numbers separated by commas, "
                                         f"e.g. 1,2,3; got {text!r}")
    return found


def at_least_two(text: str) -> int:
    """argparse type of --seeds: the test compares at least 2 seeds a side."""
    value = positive(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"the test needs at least 2 seeds a side, got {value}")
    return value


def make_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Train classifiers of real vs mismatched Mirror twins from SAGAN's D blocks, "
        "at several depths, with and without one self-attention block, several seeds each; "
        "write held-out accuracy per depth with a one-sided test that attention helps (JSON, "
        "Markdown), the figure of accuracy against receptive field and one probe's attention "
        "maps.")
    parser.add_argument("--seeds", type=at_least_two, default=5, metavar="N",
                        help="seeds per cell: 0 .. N-1, at least 2 for the test (default: 5)")
    parser.add_argument("--blocks", type=depths, default=[1, 2, 3], metavar="LIST",
                        help="depths: D blocks per classifier, comma-separated (default: 1,2,3)")
    parser.add_argument("--steps", type=positive, default=Settings.steps, metavar="N",
                        help=f"training steps per classifier (default: {Settings.steps})")
    parser.add_argument("--channels", type=positive, default=Settings.channels, metavar="N",
                        help=f"channels of every block (default: {Settings.channels})")
    parser.add_argument("--jobs", type=positive, default=2, metavar="N",
                        help="classifiers trained at a time, one process each (default: 2)")
    parser.add_argument("--out", default="probe", metavar="DIR",
                        help="output folder for probe.json, probe.md, probe.png and "
                        "probe-attention.png (default: ./probe)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    return cli.run(PROG, lambda: probe(args, argv))


def probe(args, argv: list[str] | None) -> int:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    blocks = args.blocks
    settings = Settings(steps=args.steps, channels=args.channels)
    threads = workers.default_threads(args.jobs)
    cells = [(b, a, s) for s in range(args.seeds) for b in blocks for a in (False, True)]
    start, runs, states, load = time.monotonic(), [], {}, host.load_average()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.jobs, mp_context=context, initializer=torch.set_num_threads,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(run, b, a, s, settings) for b, a, s in cells]
        for future in tqdm(as_completed(futures), total=len(futures), disable=not args.progress,
                           desc="probe classifiers", unit="run"):
            try:
                result, state = future.result()
            except BaseException:  # a failed classifier (or Ctrl-C): train no further cells
                pool.shutdown(cancel_futures=True)
                raise
            runs.append(result)
            states[(result["blocks"], result["attention"], result["seed"])] = state
    runs.sort(key=lambda r: (r["blocks"], r["attention"], r["seed"]))
    fields = {b: receptive_field(b, settings.channels, settings.resolution) for b in blocks}
    rows = report.summarise(runs, fields)
    seconds = round(time.monotonic() - start, 1)
    meta = {
        "command": " ".join([PROG, *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
        "settings": asdict(settings), "seeds": args.seeds, "jobs": args.jobs,
        "threads": threads, "seconds": seconds, "load_average_before": round(load, 2),
        "machine": workers.machine(),
    }
    (out / "probe.json").write_text(json.dumps({**meta, "rows": rows, "runs": runs}, indent=1)
                                    + "\n")
    table = report.markdown(rows)
    (out / "probe.md").write_text(table)
    title = (f"Real vs mismatched twins, {args.seeds} seeds per point, {settings.steps} steps, "
             f"{settings.channels} channels")
    report.figure(rows, runs, out / "probe.png", title)
    shallow = [r for r in runs if r["blocks"] == blocks[0] and r["attention"]]
    middle = statistics.median_low(r["test_accuracy"] for r in shallow)
    seed = next(r["seed"] for r in shallow if r["test_accuracy"] == middle)
    report.attention_maps(states[(blocks[0], True, seed)], settings.channels, blocks[0],
                          settings.resolution, out / "probe-attention.png")
    print(table)
    print(f"{len(runs)} classifiers in {seconds} s; results in {out} (probe.json, probe.md, "
          f"probe.png; probe-attention.png: {blocks[0]} block(s) with attention, seed {seed}, "
          f"the median held-out accuracy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
