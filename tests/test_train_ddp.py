"""Data-parallel training on CPU: two gloo processes under torchrun agree on every weight."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from accelerated import config as C
from accelerated.models import build_models

# Runs on each rank: train through the CLI's own set-up, then dump this rank's weights and every
# path it opened for writing under the run folder (outside it: the dumps themselves).
RANK_SCRIPT = textwrap.dedent(
    """
    import builtins, os, signal, sys, torch
    out, argv = sys.argv[1], sys.argv[2:]
    written = []
    real_open = builtins.open
    def spy_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            written.append(str(file))
        return real_open(file, mode, *args, **kwargs)
    builtins.open = spy_open
    from accelerated import train
    from accelerated.training.run import Run
    cfg, run_dir, ctx, _ = train.prepare(argv)
    trainer = Run(cfg, run_dir, ctx)
    trainer.start_new()
    stop_at = int(os.environ.get("SIGTERM_RANK1_AT_STEP", "-1"))  # a signal to rank 1 alone
    def sigterm(module, inputs):
        if ctx.rank == 1 and trainer.step == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
    trainer.gan.G.register_forward_pre_hook(sigterm)
    outcome = trainer.train()
    builtins.open = real_open
    torch.save({"G": dict(trainer.gan.G.named_parameters()), "D": trainer.gan.D.state_dict(),
                "written": written, "batch": trainer.batch, "outcome": outcome,
                "step": trainer.step},
               os.path.join(out, f"rank{ctx.rank}.pt"))
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(tmp_path, *argv, cli=False, env=None):
    """Run the rank script (or, with `cli`, `-m accelerated.train` itself) on 2 CPU ranks."""
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    target = ["-m", "accelerated.train"] if cli else [str(script), str(tmp_path)]
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
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["batch"] == r1["batch"] == 4  # the global batch of 8, split over 2 ranks
    assert r0["outcome"] == r1["outcome"] == "done"
    for net in ("G", "D"):
        assert r0[net].keys() == r1[net].keys()
        for name, value in r0[net].items():
            assert torch.equal(value, r1[net][name]), f"{net}.{name} differs between ranks"
    run_dir = tmp_path / "runs" / "ddp"
    if lazy_r1:  # iterations 0 and 2 compute it; the row of iteration 1 repeats iteration 0's
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
        first, second, third = (row["r1"] for row in rows if row["kind"] == "train")
        assert first > 0 and second == first and third != first
    assert any(str(run_dir) in path for path in r0["written"])  # rank 0 wrote the run
    assert [p for p in r1["written"] if str(tmp_path) in p] == []  # rank 1 wrote nothing
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
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["outcome"] == r1["outcome"] == "stopped"
    assert r0["step"] == r1["step"] == 2  # step 1 (0-based) was finished, then all stopped
    assert (tmp_path / "runs" / "ddp" / "checkpoints" / "step-00000002.pt").is_file()
