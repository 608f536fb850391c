"""Fault tolerance of the training loop: non-finite steps, rollbacks, signals, failed writes."""

import errno
import os
import signal

import pytest
import torch

from accelerated import checkpoint
from accelerated import config as C
from accelerated.training import distributed
from accelerated.training.metrics_log import read_records
from accelerated.training.run import Run, TrainingError


def make_trainer(tmp_path, **overrides):
    settings = {"run.sample_every": "1000", "run.eval_every": "1000", **overrides}
    cfg = C.build("tiny", overrides=settings)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    trainer = Run(cfg, run_dir, distributed.setup("cpu"))
    trainer.start_new()
    return trainer


def poison_d(trainer, when):
    """Make D's output NaN whenever `when(trainer)` holds (a diverging step, injected)."""

    def hook(module, inputs, output):
        return output * float("nan") if when(trainer) else output

    return trainer.gan.D.register_forward_hook(hook)


def weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_non_finite_steps_are_skipped_and_counted(tmp_path):
    trainer = make_trainer(tmp_path, **{"run.steps": "5"})
    poison_d(trainer, lambda t: t.step in (1, 3))
    assert trainer.train() == "done"
    assert trainer.counters == {"skipped_d": 2, "skipped_g": 2, "rollbacks": 0}
    assert all(torch.isfinite(p).all() for p in trainer.gan.G.parameters())
    assert all(torch.isfinite(p).all() for p in trainer.gan.D.parameters())
    state = checkpoint.latest(trainer.run_dir)[1]
    assert state["counters"]["skipped_d"] == 2 and state["step"] == 5


def test_a_skipped_step_leaves_weights_and_optimiser_untouched(tmp_path):
    trainer = make_trainer(tmp_path, **{"run.steps": "1"})
    poison_d(trainer, lambda t: True)
    g, d = weights(trainer.gan.G), weights(trainer.gan.D)
    trainer.train()
    assert trainer.counters["skipped_d"] == 1 and trainer.counters["skipped_g"] == 1
    params = {k for k, _ in trainer.gan.G.named_parameters()}
    assert all(torch.equal(g[k], v) for k, v in weights(trainer.gan.G).items() if k in params)
    d_params = {k for k, _ in trainer.gan.D.named_parameters()}
    assert all(torch.equal(d[k], v) for k, v in weights(trainer.gan.D).items() if k in d_params)
    assert trainer.gan.opt_D.state_dict()["state"] == {}  # Adam never stepped


def test_too_many_bad_steps_roll_back_then_recover(tmp_path, capsys):
    trainer = make_trainer(tmp_path, **{"run.steps": "6", "run.checkpoint_every": "2",
                                        "run.max_bad_steps": "2"})
    # Steps 4 and 5 diverge, until the first rollback (fresh noise then avoids it).
    poison_d(trainer, lambda t: t.step >= 3 and t.counters["rollbacks"] == 0)
    assert trainer.train() == "done"
    assert trainer.step == 6 and trainer.counters["rollbacks"] == 1
    err = capsys.readouterr().err
    assert "rollback 1/3: 2 non-finite steps in a row at step 5" in err
    # the newest checkpoint from before the divergence, not step 4's, written during it
    assert "step-00000002.pt (step 2)" in err


def test_rollback_goes_back_before_the_bad_streak_even_keeping_one_checkpoint(tmp_path, capsys):
    trainer = make_trainer(tmp_path, **{"run.steps": "8", "run.checkpoint_every": "1",
                                        "run.keep_checkpoints": "1", "run.max_bad_steps": "3"})
    # Steps 4 to 6 diverge; their checkpoints (4, 5) push out no older one.
    poison_d(trainer, lambda t: t.step >= 3 and t.counters["rollbacks"] == 0)
    assert trainer.train() == "done"
    assert "non-finite steps in a row at step 6; back to" in capsys.readouterr().err
    events = [r for r in read_records(trainer.run_dir) if r["kind"] == "event"]
    assert events == [{**events[0], "rollback": 1, "from_step": 6, "step": 3}]
    assert checkpoint.list_checkpoints(trainer.run_dir) == [checkpoint.path_for(trainer.run_dir, 8)]


def test_gives_up_after_max_rollbacks(tmp_path):
    trainer = make_trainer(tmp_path, **{"run.steps": "50", "run.max_bad_steps": "2",
                                        "run.max_rollbacks": "2"})
    poison_d(trainer, lambda t: True)
    with pytest.raises(TrainingError, match=r"diverged.*after 2 rollbacks"):
        trainer.train()
    assert trainer.counters["rollbacks"] == 2


def test_sigterm_finishes_the_step_saves_and_stops(tmp_path):
    trainer = make_trainer(tmp_path, **{"run.steps": "50", "run.checkpoint_every": "1000"})

    def send_sigterm(module, inputs):
        if trainer.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    trainer.gan.G.register_forward_pre_hook(send_sigterm)
    previous = signal.getsignal(signal.SIGTERM)
    assert trainer.train() == "stopped"
    assert trainer.step == 3  # the step running when the signal came was finished
    assert checkpoint.latest(trainer.run_dir)[1]["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored


def test_a_second_ctrl_c_while_the_stop_checkpoint_is_written_waits_for_it(tmp_path, monkeypatch,
                                                                          capsys):
    """Bug: a second Ctrl-C during the stop checkpoint interrupted the write (exit 130, 1, 0 or
    -2 depending on when it came). Now the checkpoint is written, then the run stops."""
    trainer = make_trainer(tmp_path, **{"run.steps": "50", "run.checkpoint_every": "1000"})

    def first_ctrl_c(module, inputs):
        if trainer.step == 2 and not trainer.stop_requested:  # G runs twice a step
            os.kill(os.getpid(), signal.SIGINT)

    save = checkpoint.save

    def second_ctrl_c_mid_save(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs now, inside the write
        return save(*args, **kwargs)

    trainer.gan.G.register_forward_pre_hook(first_ctrl_c)
    monkeypatch.setattr(checkpoint, "save", second_ctrl_c_mid_save)
    assert trainer.train() == "stopped"
    assert checkpoint.latest(trainer.run_dir)[1]["step"] == trainer.step == 3
    assert "a checkpoint is being written; stopping as soon as it is" in capsys.readouterr().err


def test_failed_checkpoint_write_is_reported_and_training_goes_on(tmp_path, monkeypatch, capsys):
    trainer = make_trainer(tmp_path, **{"run.steps": "3", "run.checkpoint_every": "1"})

    def disk_full(obj, fh):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    assert trainer.train() == "done"
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert "could not write the checkpoint of step 1" in err
    assert "step-00000000.pt is still usable" in err
    assert checkpoint.latest(trainer.run_dir)[1]["step"] == 0
