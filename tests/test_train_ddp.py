"""Data-parallel training on CPU: two gloo processes under torchrun agree on every weight."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _net import free_port
from _torchrun_worker import assert_data_split, assert_one_writer, assert_same_weights, load_ranks

from accelerated import config as C
from accelerated.models import build_models

WORKER = Path(__file__).with_name("_torchrun_worker.py")  # a rank, watched from inside

def torchrun(tmp_path, *argv, cli=False, env=None):
    """Run the watched worker (or, with `cli`, `-m accelerated.train` itself) on 2 CPU ranks."""
    target = ["-m", "accelerated.train"] if cli else [str(WORKER), str(tmp_path)]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), *target,
               "--preset", "tiny", "--run.out_dir", str(tmp_path / "runs"),
               "--run.name", "ddp", "--run.device", "cpu", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.mark.slow
@pytest.mark.parametrize("lazy_r1", [False, True], ids=["plain", "r1"])
def test_two_gloo_ranks_end_with_identical_weights_and_only_rank_0_writes(tmp_path, lazy_r1):
    # with lazy R1, D's loss differentiates D twice through DDP's forward every other step
    extra = ("--optim.r1_gamma", "1", "--optim.r1_every", "2") if lazy_r1 else ()
    out = torchrun(tmp_path, "--run.steps", "3", "--optim.batch_size", "8", *extra)
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = r0, r1 = load_ranks(tmp_path, 2)
    assert r0["batch"] == r1["batch"] == 4  # the global batch of 8, split over 2 ranks
    assert r0["outcome"] == r1["outcome"] == "done"
    assert_same_weights(ranks)
    assert_data_split(ranks, draws=3)
    run_dir = tmp_path / "runs" / "ddp"
    if lazy_r1:  # iterations 0 and 2 compute it; the row of iteration 1 repeats iteration 0's
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
        first, second, third = (row["r1"] for row in rows if row["kind"] == "train")
        assert first > 0 and second == first and third != first
    assert_one_writer(ranks, run_dir, tmp_path)
    assert (run_dir / "checkpoints" / "step-00000003.pt").is_file()
    # The weights did train: equal on both ranks, but not equal to the initial ones.
    torch.manual_seed(0)  # run.seed
    initial = dict(build_models(C.build("tiny").model)[0].named_parameters())
    assert any(not torch.equal(initial[k], v) for k, v in r0["G"].items())


@pytest.mark.slow
def test_batch_that_does_not_split_over_the_ranks_is_refused(tmp_path):
    out = torchrun(tmp_path, "--optim.batch_size", "9", cli=True)
    assert out.returncode != 0
    message = ("python -m accelerated.train: error: optim.batch_size 9 does not divide by the "
               "2 ranks: use a multiple of 2")
    assert out.stderr.count(message) == 2  # each rank says it once
    assert "accelerated/" not in out.stderr  # torchrun reports the exit; no traceback of ours
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_signal_to_one_rank_stops_all_ranks_at_the_same_step(tmp_path):
    out = torchrun(tmp_path, "--run.steps", "50", "--optim.batch_size", "8",
                   "--run.checkpoint_every", "1000", env={"SIGTERM_RANK1_AT_STEP": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    r0, r1 = load_ranks(tmp_path, 2)
    assert r0["outcome"] == r1["outcome"] == "stopped"
    assert r0["step"] == r1["step"] == 2  # step 1 (0-based) was finished, then all stopped
    assert (tmp_path / "runs" / "ddp" / "checkpoints" / "step-00000002.pt").is_file()
