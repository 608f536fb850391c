"""Fault injection: a training run in subprocesses, killed, signalled, corrupted and filled up.

One run of the tiny preset is taken through every fault in turn, each time continued with
`--resume`: SIGKILL while its first checkpoint is half written, SIGKILL at random moments in the
middle of steps, SIGKILL with a complete checkpoint not yet renamed into place, SIGINT, its two
newest checkpoints truncated and overwritten with garbage, and a full disk on one checkpoint.
After each fault the files are checked (complete checkpoints load, nothing half written is taken
for a checkpoint, config and earlier checkpoints unchanged, the log only appended to), and at the
end its weights, optimiser and random states must equal those of an uninterrupted run.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from accelerated.training import checkpoint
from accelerated.training.logging import read_records

STEPS = 12
SETTINGS = ["--preset", "tiny", "--run.steps", str(STEPS), "--run.checkpoint_every", "1",
            "--run.keep_checkpoints", "3", "--run.sample_every", "1000", "--run.eval_every", "1000",
            "--run.eval_metrics", "none", "--run.best_metric", "score"]
# One thread: the same arithmetic in every process (and kinder to a busy 2-core machine).
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
WRITER = Path(__file__).with_name("_fault_writer.py")


def launch(argv, write_fault=None) -> subprocess.Popen:
    """`python -m accelerated.train ARGV`, or under _fault_writer.py with (step, fault)."""
    if write_fault is None:
        command = [sys.executable, "-m", "accelerated.train", *argv]
    else:
        step, fault = write_fault
        command = [sys.executable, str(WRITER), str(step), fault, *argv]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)


def finish(proc, returncode: int) -> tuple[str, str]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == returncode, f"exit {proc.returncode}:\n{out}\n{err}"
    assert "Traceback" not in err
    return out, err


def logged_steps(run_dir: Path) -> list[int]:
    """Steps of the train records in metrics.jsonl (its complete lines: each must be JSON)."""
    return [r["step"] for r in read_records(run_dir) if r["kind"] == "train"]


def wait_for_step(proc, run_dir: Path, step: int) -> None:
    """Wait until a train record of `step` or later is in metrics.jsonl (the run still going)."""
    deadline = time.monotonic() + 300
    while max(logged_steps(run_dir), default=-1) < step:
        assert proc.poll() is None, f"ended before step {step}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no step {step} within 300 s"
        time.sleep(0.02)


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """The bytes of the run's config, log and everything in its checkpoints folder."""
    files = [run_dir / "config.json", run_dir / "config.toml", run_dir / "metrics.jsonl",
             *(run_dir / "checkpoints").glob("*")]
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in files if p.is_file()}


def check_intact(run_dir: Path, before: dict[str, bytes]) -> int:
    """After a fault: every complete checkpoint loads and names its own step, the newest one is
    what --resume takes (no half-written file is), at most one step of work is lost, and the
    config, the earlier checkpoints and the log so far are unchanged. Returns the newest step."""
    after = snapshot(run_dir)
    for name in ("config.json", "config.toml"):
        assert after[name] == before[name], f"{name} changed"
    log = after.get("metrics.jsonl", b"")
    assert log.startswith(before.get("metrics.jsonl", b"")) and log[-1:] in (b"", b"\n")
    complete = checkpoint.list_checkpoints(run_dir)
    for path in complete:
        assert checkpoint.load(path)["step"] == int(path.stem.removeprefix("step-"))
        name = str(path.relative_to(run_dir))
        assert after[name] == before.get(name, after[name]), f"{name} was rewritten"
    others = {p.name for p in (run_dir / "checkpoints").iterdir()} - {p.name for p in complete}
    assert all(n.startswith(".step-") and n.endswith(".pt.tmp") for n in others), others
    warnings = []
    path, state = checkpoint.latest(run_dir, warn=warnings.append)
    assert warnings == [] and path == complete[-1]
    assert state["step"] >= max(logged_steps(run_dir)) - 1  # the step being saved, at most
    return state["step"]


def kill_mid_step(proc, run_dir: Path, step: int, rng: random.Random) -> str:
    """SIGKILL at a random moment (fixed seed) after step `step` was logged; returns stderr."""
    wait_for_step(proc, run_dir, step)
    time.sleep(rng.uniform(0, 0.25))
    proc.send_signal(signal.SIGKILL)
    return finish(proc, -signal.SIGKILL)[1]


def mismatches(a, b, path="") -> list[str]:
    """Paths at which two nested checkpoint structures differ (tensors compared exactly)."""
    if isinstance(a, torch.Tensor):
        same = isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
        return [] if same else [path]
    if isinstance(a, dict):
        if not isinstance(b, dict) or a.keys() != b.keys():
            return [path]
        return [m for k in a for m in mismatches(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, list | tuple):
        if type(a) is not type(b) or len(a) != len(b):
            return [path]
        pairs = enumerate(zip(a, b, strict=True))
        return [m for i, (x, y) in pairs for m in mismatches(x, y, f"{path}/{i}")]
    return [] if a == b else [path]


def test_killed_signalled_and_corrupted_run_ends_with_the_uninterrupted_weights(
        tmp_path, fault_tally):
    rng = random.Random(20240509)
    settings = [*SETTINGS, "--data.cache_dir", str(tmp_path / "cache"), "--run.out_dir",
                str(tmp_path)]
    reference = launch([*settings, "--run.name", "straight"])
    run_dir = tmp_path / "faulty"
    resume = ["--resume", str(run_dir)]
    tmp_name = ".step-{:08d}.pt.tmp".format

    # Killed half-way through writing its first checkpoint: nothing complete, a partial file.
    proc = launch([*settings, "--run.name", "faulty"], (0, "half"))
    finish(proc, -signal.SIGKILL)
    assert checkpoint.list_checkpoints(run_dir) == []
    assert (run_dir / "checkpoints" / tmp_name(0)).stat().st_size > 1000
    fault_tally.fault("SIGKILL mid-checkpoint-write")
    before = snapshot(run_dir)

    # --resume starts such a run at step 0; then two SIGKILLs at random moments mid-step.
    expected = f"{run_dir} has no checkpoint"
    for _ in range(2):
        err = kill_mid_step(launch(resume), run_dir, max(logged_steps(run_dir), default=0) + 2,
                            rng)
        assert expected in err
        newest = check_intact(run_dir, before)
        fault_tally.fault("SIGKILL mid-step")
        expected, before = f"resuming {run_dir} at step {newest} from", snapshot(run_dir)

    # Killed with the next checkpoint complete and fsynced, but not yet renamed into place.
    proc = launch(resume, (newest + 1, "unrenamed"))
    finish(proc, -signal.SIGKILL)
    assert check_intact(run_dir, before) == newest
    unrenamed = run_dir / "checkpoints" / tmp_name(newest + 1)
    assert checkpoint.load(unrenamed)["step"] == newest + 1  # complete, yet not taken
    fault_tally.fault("SIGKILL mid-checkpoint-write")
    before = snapshot(run_dir)

    # SIGINT: the step in progress is finished and saved, exit 0.
    proc = launch(resume)
    wait_for_step(proc, run_dir, max(logged_steps(run_dir)) + 1)
    proc.send_signal(signal.SIGINT)
    out, err = finish(proc, 0)
    stopped = check_intact(run_dir, before)
    assert f"stopped at step {stopped}" in out and stopped == max(logged_steps(run_dir))
    assert not unrenamed.exists()  # that step was done again and saved properly
    fault_tally.fault("SIGINT")

    # The two newest checkpoints damaged: one truncated, one garbage. --resume falls back to
    # the third, and the disk is full when the checkpoint after it is written (so the garbage
    # file of that step stays; the truncated one is replaced, even if SIGINT came at the end).
    *_, third, second, first = checkpoint.list_checkpoints(run_dir)
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    second.write_bytes(rng.randbytes(second.stat().st_size))
    fault_tally.fault("corrupt checkpoint")
    fault_tally.fault("corrupt checkpoint")
    start = checkpoint.load(third)["step"]
    proc = launch(resume, (start + 1, "disk-full"))
    out, err = finish(proc, 0)
    assert err.count("warning: skipping checkpoint") == 2 and str(first) in err
    assert f"resuming {run_dir} at step {start} from {third}" in err
    assert f"could not write the checkpoint of step {start + 1}" in err
    fault_tally.fault("disk full")

    # Nothing half-written is left, and the run ends exactly where an uninterrupted one does.
    assert sorted(os.listdir(run_dir / "checkpoints")) == [
        f"step-{s:08d}.pt" for s in range(STEPS - 2, STEPS + 1)]
    finish(reference, 0)
    want = checkpoint.load(tmp_path / "straight" / "checkpoints" / f"step-{STEPS:08d}.pt")
    got = checkpoint.load(run_dir / "checkpoints" / f"step-{STEPS:08d}.pt")
    # Not compared: the config (the run names differ) and the global random generators, which
    # training never draws from (noise and data order are functions of seed and step): Python's
    # and NumPy's start from OS entropy in every process, and each start of the data loader
    # takes one draw from torch's, so they differ after a resume (and are restored regardless).
    for state in (want, got):
        del state["config"], state["rng"]
    assert {"G", "D", "G_ema", "opt_G", "opt_D", "counters", "step"} <= set(want)
    assert mismatches(want, got) == []
