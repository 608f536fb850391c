"""Starting a run: atomic (a folder appears with its config, or nothing stays), and locked (one
training process per run folder)."""

import fcntl
import json

import pytest

from accelerated import checkpoint, train
from accelerated.training import distributed, run


def argv(tmp_path, *extra):
    return ["--preset", "tiny", "--run.out_dir", str(tmp_path / "runs"), "--run.name", "r",
            "--data.cache_dir", str(tmp_path / "cache"), *extra]


ALLOCATION = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 4000000000000 bytes"


@pytest.mark.parametrize("failure", [RuntimeError(ALLOCATION), MemoryError(), KeyboardInterrupt(),
                                     OSError(13, "Permission denied", "/cache")])
def test_a_start_that_fails_leaves_nothing_and_the_folder_had_its_config(tmp_path, monkeypatch,
                                                                         capsys, failure):
    seen = []

    class Failing:
        def __init__(self, cfg, run_dir, ctx):
            seen.append(json.loads((run_dir / "config.json").read_text())["run"]["name"])
            raise failure

    monkeypatch.setattr(train, "Run", Failing)
    code = train.main(argv(tmp_path))
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    if isinstance(failure, KeyboardInterrupt):
        assert code == 130 and "nothing was kept" in err and "--resume" not in err
    else:
        assert code == 1 and "error:" in err
    assert seen == ["r"]  # the folder was visible only with its config in it
    assert list((tmp_path / "runs").iterdir()) == []  # and is gone, temporary folder included


def test_a_run_folder_is_locked_while_it_trains(tmp_path, capsys):
    cfg = train.build_config(train.make_parser().parse_args(argv(tmp_path)))[0]
    run_dir = train.new_run_dir(cfg)
    before = sorted(p.name for p in run_dir.iterdir())
    with open(run_dir / train.LOCK, "a") as held:  # another process training it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert train.main(["--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"run folder {run_dir} is in use by another" in err
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([*before, train.LOCK])
    # Released (the other process ended): the lock is free again, the file may stay.
    lock = train.lock_run(run_dir)
    lock.close()


def test_resume_trains_with_the_new_optimiser_settings(tmp_path):
    cheap = ["--run.steps", "1", "--run.eval_metrics", "none", "--run.best_metric", "score"]
    cfg = train.build_config(train.make_parser().parse_args(argv(tmp_path, *cheap)))[0]
    run_dir = train.new_run_dir(cfg)
    trainer = run.Run(cfg, run_dir, distributed.setup("cpu"))
    trainer.start_new()
    trainer.train()
    path, state = checkpoint.latest(run_dir)
    new = ["--resume", str(run_dir), "--optim.lr_d", "1e-6", "--optim.lr_g", "2e-6",
           "--optim.beta2", "0.5", "--optim.eps", "1e-7"]
    resumed = run.Run(train.build_config(train.make_parser().parse_args(new))[0], run_dir,
                           distributed.setup("cpu"))
    resumed.load(state, path)
    for opt, lr in ((resumed.gan.opt_D, 1e-6), (resumed.gan.opt_G, 2e-6)):
        for group in opt.param_groups:
            assert (group["lr"], tuple(group["betas"]), group["eps"]) == (lr, (0.0, 0.5), 1e-7)
    # the Adam moments are the checkpoint's
    assert resumed.gan.opt_D.state_dict()["state"].keys() == state["opt_D"]["state"].keys()
