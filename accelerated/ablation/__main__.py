r"""The command line of `python -m accelerated.ablation` (see the package docstring)."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from accelerated import cli
from accelerated import config as C
from accelerated.ablation import plot, results, stats, variants, workers
from accelerated.ablation.runs import AblationError, Schedule, plan
from accelerated.cli import Parser, positive

PROG = "python -m accelerated.ablation"


COMPARED = ("final_score", "final_agreement")
"""The per-seed values each configuration is tested on against the study's baseline."""


def make_parser() -> Parser:
    names = ", ".join(v.name for v in variants.VARIANTS)
    studies = ", ".join(f"{k} ({', '.join(v.name for v in vs)})"
                        for k, vs in variants.STUDIES.items())
    parser = Parser(
        prog=PROG,
        description="Train the configurations of SAGAN's ablation on the built-in data set, "
        "several seeds each, and write a table (Markdown, CSV, JSON) and a plot of quality vs "
        "step. Finished runs are kept: the same command continues an interrupted ablation.")
    parser.add_argument("--study", default="paper", metavar="NAME",
                        help=f"which set of configurations: {studies} (default: paper)")
    parser.add_argument("--configs", default=None, metavar="LIST",
                        help=f"comma-separated configurations of the study (default: all; "
                        f"paper: {names})")
    parser.add_argument("--seeds", type=positive, default=3, metavar="N",
                        help="seeds per configuration: 0 .. N-1 (default: 3)")
    parser.add_argument("--steps", type=positive, default=1000, metavar="N",
                        help="training steps per run (default: 1000)")
    parser.add_argument("--eval-every", type=positive, default=100, metavar="N",
                        help="steps between quality evaluations (default: 100)")
    parser.add_argument("--eval-samples", type=positive, default=500, metavar="N",
                        help="samples per evaluation (default: 500)")
    parser.add_argument("--preset", default=C.DEFAULT_PRESET, metavar="NAME",
                        help=f"training preset, one with the built-in data set (default: "
                        f"{C.DEFAULT_PRESET}; tiny for a smoke test)")
    parser.add_argument("--jobs", type=positive, default=2, metavar="N",
                        help="training processes at a time (default: 2)")
    parser.add_argument("--threads", type=positive, default=None, metavar="N",
                        help="torch threads per process (default: the CPU cores / --jobs)")
    parser.add_argument("--out", default="ablation", metavar="DIR",
                        help="output folder: runs/, logs/ and the ablation.* results "
                        "(default: ./ablation)")
    parser.add_argument("--table-only", action="store_true",
                        help="train nothing: write the table and plot of the runs finished so far")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar")
    return parser


def check_out(out: Path) -> None:
    """Raise AblationError when `out` cannot be the output folder: it, or a folder above it, is
    a file."""
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise AblationError(f"--out {out}: {existing} is a file, not a folder; choose another "
                            f"--out")


def compare(rows: list[dict]) -> dict[str, list[dict]]:
    """{metric: tests of the first configuration (the baseline) against each other one}, for the
    configurations with at least 2 finished seeds on both sides."""
    baseline, others = rows[0], [row for row in rows[1:] if row["seeds"] >= 2]
    if baseline["seeds"] < 2:
        return {}
    return {metric: [{"variant": row["config"],
                      **stats.compare([r[metric] for r in baseline["runs"]],
                                      [r[metric] for r in row["runs"]])} for row in others]
            for metric in COMPARED}


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    return cli.run(PROG, lambda: ablation(args, argv))


def ablation(args, argv: list[str] | None) -> int:
    """Train what is left of the ablation `args` asks for, then write its table and plot."""
    out = Path(args.out).resolve()
    threads = args.threads or workers.default_threads(args.jobs)
    check_out(out)
    C.preset(args.preset)  # an unknown name fails here, before any configuration
    names = None if args.configs is None else [n.strip() for n in args.configs.split(",")]
    try:
        chosen = variants.by_name(names, args.study)
    except KeyError as err:
        raise AblationError(err.args[0]) from None
    schedule = Schedule(args.preset, args.steps, args.eval_every, args.eval_samples)
    runs = plan(chosen, args.seeds, schedule, out)
    for run in runs:
        run.check_folder()
    # Runs already started go first: they resume from a checkpoint, part done.
    todo = sorted((run for run in runs if run.state() != "done"),
                  key=lambda run: run.state() != "partial")
    plan_text = ("left untrained (--table-only)" if args.table_only else
                 f"to train with {args.jobs} processes x {threads} threads")
    print(f"{len(runs)} runs ({len(chosen)} configurations x {args.seeds} seeds, {args.steps} "
          f"steps): {len(runs) - len(todo)} done, {len(todo)} {plan_text} -> {out}",
          file=sys.stderr)
    start = time.monotonic()
    failed, status = {}, 0
    try:
        if not args.table_only:
            failed = workers.run_all(todo, args.jobs, threads, out / "logs", args.progress)
    except workers.Interrupted as err:
        print(f"{PROG}: interrupted ({err}; checkpoints saved): run the same command again "
              f"to continue; the results below are of the runs finished so far", file=sys.stderr)
        status = 130
    rows = results.summarise(runs)
    if not rows:
        print(f"{PROG}: no run has finished yet (logs: {out / 'logs'})", file=sys.stderr)
        return status or 1
    meta = {
        "command": " ".join([PROG, *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
        "study": args.study, "preset": args.preset, "steps": args.steps, "seeds": args.seeds,
        "eval_every": args.eval_every, "eval_samples": args.eval_samples, "jobs": args.jobs,
        "threads": threads, "seconds_this_invocation": round(time.monotonic() - start, 1),
        "machine": workers.machine(),
    }
    meta["comparisons"] = compare(rows)
    paths = results.write(rows, out, meta)
    title = (f"SAGAN ablation ({args.study}): {args.preset} preset, {args.steps} steps; mean over "
             f"n seeds, band: min-max")
    figure = plot.figure(rows, out / "ablation.png", title)
    print(results.markdown(rows))
    for metric, found in meta["comparisons"].items():
        if found:
            print(stats.markdown(found, metric, rows[0]["config"]))
    print(f"table: {paths['md']} (also .csv, .json); plot: {figure}")
    for name, error in failed.items():
        print(f"failed: {name}: {error} (log: {out / 'logs' / name}.log)", file=sys.stderr)
    return status or (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
