"""Fault injection: training runs in subprocesses, killed, signalled, corrupted and filled up.

Each test is one scenario: a run of the tiny preset meets a fault, is continued with `--resume`
(a step, and each target, computed from the resume point and clamped to the run), and must end
with weights, optimiser and counters bitwise equal to those of an uninterrupted run. The faults
come from the real layer: signals from another process (SIGKILL, SIGINT, a SIGTERM to the whole
process group, data loader workers included), the kernel refusing writes inside the real
`torch.save` and the log (a file-size limit, as on a full disk), damaged files on disk.

Nothing here waits on a clock: the child stops at a given (step, phase) and tells the test
through a pipe, the test strikes, then lets it go on (`tests/_fault_writer.py`). So a fast idle
machine and a loaded one see the same faults at the same points. After each fault the files are
checked: complete checkpoints load, nothing half written is taken for a checkpoint, earlier
checkpoints and the config unchanged, the log only appended to.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from accelerated import checkpoint
from accelerated.training.metrics_log import read_records

# The fault suite (with test_faults_fuzz.py) runs in the full suite, not the quick tier.
pytestmark = pytest.mark.slow

STEPS = 6
SETTINGS = ["--preset", "tiny", "--run.steps", str(STEPS), "--run.checkpoint_every", "1",
            "--run.keep_checkpoints", "3", "--run.sample_every", "1000", "--run.eval_every", "1000",
            "--run.eval_metrics", "none", "--run.best_metric", "score"]
# One thread: the same arithmetic in every process (and kinder to a busy 2-core machine).
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
WRITER = Path(__file__).with_name("_fault_writer.py")
PART = 64 * 1024  # what _fault_writer.py lets a checkpoint write before a `write` fault
TMP_NAME = ".step-{:08d}.pt.tmp".format


class Child:
    """`python -m accelerated.train ARGV` in a process group of its own, or under
    _fault_writer.py, stopping at (step, phase) until released, or with a full disk there."""

    def __init__(self, argv, at=None):
        pipes = {}
        if at is None:
            command = [sys.executable, "-m", "accelerated.train", *argv]
        else:
            step, phase, fault = at
            command = [sys.executable, str(WRITER), str(step), phase, fault, *argv]
            (ready_r, ready_w), (go_r, go_w) = os.pipe(), os.pipe()
            pipes = {"pass_fds": (ready_w, go_r),
                     "env": {**ENV, "FAULT_PIPES": f"{ready_w},{go_r}"}}
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, process_group=0, **{"env": ENV, **pipes})
        if pipes:
            os.close(ready_w), os.close(go_r)
            self.ready, self.go = ready_r, go_w

    def paused(self) -> "Child":
        """Wait until the child stopped at its fault's step and phase (fails if it ended)."""
        if os.read(self.ready, 1) != b"!":
            out, err = self.proc.communicate(timeout=300)
            pytest.fail(f"ended (exit {self.proc.returncode}) before its fault:\n{out}\n{err}")
        return self

    def release(self) -> None:
        os.write(self.go, b"!")

    def finish(self, returncode: int) -> tuple[str, str]:
        out, err = self.proc.communicate(timeout=300)
        for fd in (getattr(self, "ready", None), getattr(self, "go", None)):
            if fd is not None:
                os.close(fd)
        assert self.proc.returncode == returncode, f"exit {self.proc.returncode}:\n{out}\n{err}"
        assert "Traceback" not in err, err
        return out, err


def logged_steps(run_dir: Path) -> list[int]:
    """Steps of the train records in metrics.jsonl (its complete lines: each must be JSON)."""
    return [r["step"] for r in read_records(run_dir) if r["kind"] == "train"]


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """The bytes of the run's config, log and everything in its checkpoints folder."""
    files = [run_dir / "config.json", run_dir / "config.toml", run_dir / "metrics.jsonl",
             *(run_dir / "checkpoints").glob("*")]
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in files if p.is_file()}


def check_intact(run_dir: Path, before: dict[str, bytes] | None = None) -> int:
    """After a fault: every complete checkpoint loads and names its own step, the newest one is
    what --resume takes (no half-written file is), at most one step of work is lost, and (given
    the files `before` the fault) the config, the earlier checkpoints and the log so far are
    unchanged. Returns the newest step."""
    after = snapshot(run_dir)
    before = before or {}
    for name in ("config.json", "config.toml"):
        assert after[name] == before.get(name, after[name]), f"{name} changed"
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
    assert state["step"] >= max(logged_steps(run_dir), default=0) - 1  # at most one step lost
    return state["step"]


def target(resume_at: int, ahead: int) -> int:
    """The step `ahead` steps after the resume point, clamped to the steps the run still has."""
    return max(resume_at + 1, min(resume_at + ahead, STEPS))


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


class Runs:
    """Where a module's runs go; the uninterrupted run is started once, at the first test."""

    def __init__(self, base: Path):
        self.base = base
        self.settings = [*SETTINGS, "--data.cache_dir", str(base / "cache"), "--run.out_dir",
                         str(base)]
        self.reference = Child([*self.settings, "--run.name", "straight"])
        self.finished = False

    def new(self, name: str, at=None, extra=()) -> tuple[Child, Path]:
        return Child([*self.settings, "--run.name", name, *extra], at), self.base / name

    def resume(self, run_dir: Path, at=None, extra=()) -> Child:
        return Child(["--resume", str(run_dir), *extra], at)

    def resume_to_the_end(self, run_dir: Path, says: str) -> None:
        """Resume the run to its last step: it says `says`, leaves what was there intact, and
        ends bitwise equal to the uninterrupted run."""
        before = snapshot(run_dir)
        _, err = self.resume(run_dir).finish(0)
        assert says in err
        check_intact(run_dir, before)
        self.assert_same_as_uninterrupted(run_dir)

    def assert_same_as_uninterrupted(self, run_dir: Path) -> None:
        """The run's final checkpoint equals the uninterrupted run's, bitwise."""
        if not self.finished:
            self.reference.finish(0)
            self.finished = True
        name = f"checkpoints/step-{STEPS:08d}.pt"
        want, got = checkpoint.load(self.base / "straight" / name), checkpoint.load(run_dir / name)
        # Not compared: the config (the run names differ) and the global random generators,
        # which training never draws from (noise and data order are functions of seed and step):
        # Python's and NumPy's start from OS entropy in every process, and each start of the
        # data loader takes one draw from torch's, so they differ after a resume (and are
        # restored regardless).
        for state in (want, got):
            del state["config"], state["rng"]
        assert {"G", "D", "G_ema", "opt_G", "opt_D", "counters", "step"} <= set(want)
        assert mismatches(want, got) == []


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    runs = Runs(tmp_path_factory.mktemp("kill"))
    yield runs
    if not runs.finished:
        runs.reference.proc.kill()
        runs.reference.proc.communicate()


def test_sigkill_while_the_first_checkpoint_is_written(runs, fault_tally):
    child, run_dir = runs.new("first", (0, "write", "pause"))
    child.paused().proc.send_signal(signal.SIGKILL)
    child.finish(-signal.SIGKILL)
    assert checkpoint.list_checkpoints(run_dir) == []
    assert (run_dir / "checkpoints" / TMP_NAME(0)).stat().st_size == PART
    fault_tally.fault("SIGKILL mid-checkpoint-write")

    runs.resume_to_the_end(run_dir, f"{run_dir} has no checkpoint")
    assert not (run_dir / "checkpoints" / TMP_NAME(0)).exists()


def test_sigkill_mid_step_twice(runs, fault_tally):
    child, run_dir = runs.new("mid", (target(0, 3), "step", "pause"))
    child.paused().proc.send_signal(signal.SIGKILL)
    child.finish(-signal.SIGKILL)
    resume_at = check_intact(run_dir)
    assert resume_at == target(0, 3) - 1  # the checkpoint of the step before is complete
    fault_tally.fault("SIGKILL mid-step")

    before = snapshot(run_dir)
    child = runs.resume(run_dir, (target(resume_at, 2), "step", "pause"))
    child.paused().proc.send_signal(signal.SIGKILL)
    _, err = child.finish(-signal.SIGKILL)
    assert f"resuming {run_dir} at step {resume_at} from" in err
    resume_at = check_intact(run_dir, before)
    fault_tally.fault("SIGKILL mid-step")

    runs.resume_to_the_end(run_dir, f"resuming {run_dir} at step {resume_at} from")


def test_sigkill_with_a_complete_checkpoint_not_yet_renamed(runs, fault_tally):
    child, run_dir = runs.new("unrenamed", (2, "rename", "pause"))
    child.paused().proc.send_signal(signal.SIGKILL)
    child.finish(-signal.SIGKILL)
    assert check_intact(run_dir) == 1
    unrenamed = run_dir / "checkpoints" / TMP_NAME(2)
    assert checkpoint.load(unrenamed)["step"] == 2  # complete, yet not taken
    fault_tally.fault("SIGKILL mid-checkpoint-write")

    runs.resume_to_the_end(run_dir, f"resuming {run_dir} at step 1 from")
    assert not unrenamed.exists()  # that step was done again and saved properly


def test_sigint_finishes_the_step_and_saves(runs, fault_tally):
    child, run_dir = runs.new("sigint", (3, "step", "pause"))
    child.paused().proc.send_signal(signal.SIGINT)
    child.release()
    out, _ = child.finish(0)
    assert "stopped at step 3" in out and check_intact(run_dir) == 3
    fault_tally.fault("SIGINT")

    runs.resume_to_the_end(run_dir, f"resuming {run_dir} at step 3 from")


def test_sigterm_to_the_process_group_with_data_workers_saves(runs, fault_tally):
    """What Slurm's scancel, preemption and systemd do: SIGTERM to every process of the job,
    the data loader's workers included; the step still finishes and is saved."""
    workers = ["--data.workers", "2"]
    child, run_dir = runs.new("sigterm", (3, "step", "pause"), workers)
    os.killpg(child.paused().proc.pid, signal.SIGTERM)
    child.release()
    out, err = child.finish(0)
    assert "SIGTERM: finishing this step" in err
    assert "stopped at step 3" in out and check_intact(run_dir) == 3
    fault_tally.fault("SIGTERM to the process group")

    before = snapshot(run_dir)
    _, err = runs.resume(run_dir, extra=workers).finish(0)
    assert f"resuming {run_dir} at step 3 from" in err
    check_intact(run_dir, before)
    runs.assert_same_as_uninterrupted(run_dir)


def test_damaged_checkpoints_then_a_full_disk(runs, fault_tally):
    """The two newest checkpoints damaged (one truncated, one garbage): --resume falls back to
    the third; then the disk is full while the real torch.save writes the next checkpoint."""
    child, run_dir = runs.new("damaged", (5, "step", "pause"))
    child.paused().proc.send_signal(signal.SIGKILL)
    child.finish(-signal.SIGKILL)
    *_, third, second, first = checkpoint.list_checkpoints(run_dir)
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    second.write_bytes(os.urandom(second.stat().st_size))
    fault_tally.fault("corrupt checkpoint")
    fault_tally.fault("corrupt checkpoint")

    start = checkpoint.load(third)["step"]
    _, err = runs.resume(run_dir, (start + 1, "write", "disk-full")).finish(0)
    assert err.count("warning: skipping checkpoint") == 2 and str(first) in err
    assert f"resuming {run_dir} at step {start} from {third}" in err
    failed = [line for line in err.splitlines() if "could not write" in line]
    assert len(failed) == 1, err
    assert f"the checkpoint of step {start + 1}" in failed[0] and TMP_NAME(start + 1) in failed[0]
    assert f"{third} is still usable" in failed[0]  # not the damaged, newer-named files
    fault_tally.fault("disk full in torch.save")
    # Nothing half-written is left, and the newest checkpoints are the run's last three.
    assert sorted(os.listdir(run_dir / "checkpoints")) == [
        f"step-{s:08d}.pt" for s in range(STEPS - 2, STEPS + 1)]
    runs.assert_same_as_uninterrupted(run_dir)


def test_full_disk_while_logging_tears_a_line_that_resume_repairs(runs, fault_tally):
    child, run_dir = runs.new("log", (3, "log", "disk-full"))
    _, err = child.finish(1)
    assert err.count("\n") == 1 and "metrics.jsonl" in err and "error:" in err, err
    log = (run_dir / "metrics.jsonl").read_bytes()
    assert not log.endswith(b"\n")  # a torn last record, as a full disk leaves it
    assert logged_steps(run_dir) == [1, 2]
    assert check_intact_except_log(run_dir) == 2
    fault_tally.fault("disk full in the log")

    _, err = runs.resume(run_dir).finish(0)
    assert "torn" in err
    assert logged_steps(run_dir) == [1, 2, *range(3, STEPS + 1)]
    runs.assert_same_as_uninterrupted(run_dir)


def check_intact_except_log(run_dir: Path) -> int:
    """check_intact, for a run whose log ends in a torn line."""
    log = run_dir / "metrics.jsonl"
    torn = log.read_bytes()
    log.write_bytes(torn[: torn.rfind(b"\n") + 1])
    try:
        return check_intact(run_dir)
    finally:
        log.write_bytes(torn)
