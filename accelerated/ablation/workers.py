r"""Run training runs as `python -m accelerated.train` worker processes, a few at a time.

Each worker gets `threads` torch threads (`OMP_NUM_THREADS`), its output goes to
`OUT/logs/<run>.log`, and one progress bar counts the steps of all runs, read from their
`metrics.jsonl` as they grow. Ctrl-C or SIGTERM stops the workers the way it stops a training
run (each finishes its step and saves a checkpoint), so the same command continues later.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from accelerated import host
from accelerated.ablation.runs import Run
from accelerated.training.metrics_log import read_records

POLL_SECONDS = 1.0


class Interrupted(Exception):
    """The ablation was asked to stop (Ctrl-C or SIGTERM); its workers saved checkpoints."""


def default_threads(jobs: int) -> int:
    """The CPU cores this process may use, split between `jobs` workers (at least 1 each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // jobs)


def machine() -> str:
    """The record's "machine": CPU model, cores available, torch version."""
    return f"{host.cpu_model()}, {default_threads(1)} cores available, torch {torch.__version__}"


def steps_done(run: Run) -> int:
    """The last step logged in the run's metrics.jsonl (0 when there is none yet)."""
    records = read_records(run.folder)
    return int(records[-1]["step"]) if records else 0


def start(run: Run, threads: int, log_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{run.name}.log", "a") as log:
        return subprocess.Popen([sys.executable, "-m", "accelerated.train", *run.train_args()],
                                stdout=log, stderr=subprocess.STDOUT, env=env)


def last_lines(path: Path, n: int = 3) -> str:
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    return " | ".join(line.strip() for line in lines[-n:] if line.strip())


def run_all(runs: list[Run], jobs: int, threads: int, log_dir: Path,
            progress: bool = True) -> dict[str, str]:
    """Train `runs` (none of them done) with `jobs` workers; returns {run name: error} for the
    runs that failed. Raises Interrupted after stopping the workers on Ctrl-C / SIGTERM."""
    pending, active, failed = list(runs), {}, {}
    stop: list[int] = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: stop.append(signum)) for s in signals}
    bar = tqdm(total=sum(r.steps for r in runs), initial=sum(steps_done(r) for r in runs),
               unit="step", desc="ablation", dynamic_ncols=True, mininterval=10,
               disable=not progress)
    started = time.monotonic()
    try:
        while pending or active:
            while pending and len(active) < jobs and not stop:
                run = pending.pop(0)
                verb = "resuming" if run.state() == "partial" else "starting"
                active[run.name] = (run, start(run, threads, log_dir))
                bar.write(f"{verb} {run.name}")
            time.sleep(POLL_SECONDS)
            if stop:
                for _, proc in active.values():
                    proc.send_signal(signal.SIGTERM)  # finish the step, save a checkpoint
                for _, proc in active.values():
                    proc.wait()
                raise Interrupted(f"{len(active) + len(pending)} runs unfinished")
            for name, (run, proc) in list(active.items()):
                if proc.poll() is None:
                    continue
                del active[name]
                if proc.returncode != 0 or run.state() != "done":
                    failed[name] = (f"exit status {proc.returncode}: "
                                    f"{last_lines(log_dir / f'{name}.log')}")
                    bar.write(f"FAILED {name} ({failed[name]})")
                else:
                    minutes = (time.monotonic() - started) / 60
                    bar.write(f"finished {name} after {minutes:.1f} min of the ablation")
            done = sum(r.steps for r in runs if r not in pending and r.name not in active
                       and r.name not in failed)
            bar.update(done + sum(steps_done(run) for run, _ in active.values()) - bar.n)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        bar.close()
    return failed
