"""End-to-end runs of `accelerated.train` at the tiny preset: outputs, resume, refusals."""

import json

import pytest
import torch
from PIL import Image

from accelerated import checkpoint, train


def run(tmp_path, *extra, name="r"):
    return train.main(["--preset", "tiny", "--run.out_dir", str(tmp_path), "--run.name", name,
                       *extra])


def tensors(state, prefix=""):
    """Every tensor in a nested checkpoint structure, by path."""
    if isinstance(state, torch.Tensor):
        return {prefix: state}
    if not isinstance(state, dict | list | tuple):
        return {}
    items = state.items() if isinstance(state, dict) else enumerate(state)
    out = {}
    for key, value in items:
        out.update(tensors(value, f"{prefix}/{key}"))
    return out


def test_smoke_run_writes_everything(tmp_path, capsys):
    assert run(tmp_path) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "r"
    assert "final quality (256 samples, EMA generator): well_formed" in out
    assert f"samples: {run_dir / 'samples' / 'step-00000004.png'}" in out
    # Checkpoints: the newest 2 (keep_checkpoints) of steps 0, 2, 4.
    assert [p.name for p in checkpoint.list_checkpoints(run_dir)] == [
        "step-00000002.pt", "step-00000004.pt"]
    state = checkpoint.load(run_dir / "checkpoints" / "step-00000004.pt")
    assert state["step"] == 4 and state["format_version"] == checkpoint.FORMAT_VERSION
    assert {"G", "D", "G_ema", "opt_G", "opt_D", "rng", "config"} <= set(state)
    assert any(k.endswith("_u") for k in state["D"])  # spectral-norm vectors are saved
    assert state["opt_D"]["param_groups"][0]["lr"] == 4e-4
    assert state["opt_G"]["param_groups"][0]["betas"] == (0.0, 0.999)
    assert json.loads((run_dir / "config.json").read_text())["model"]["g_ch"] == 4
    assert "g_ch = 4" in (run_dir / "config.toml").read_text()
    grid = Image.open(run_dir / "samples" / "step-00000004.png")
    assert grid.size[1] > grid.size[0] / 2  # 4 class rows of 4 columns
    figures = sorted((run_dir / "attention").glob("step-00000004-*.png"))
    assert figures and Image.open(figures[0]).size[0] > Image.open(figures[0]).size[1] / 4
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if r["kind"] == "train"]
    assert train_steps == [1, 2, 3, 4]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4] and 0 <= evals[-1]["score"] <= 1
    # attention: gamma of each layer on every log step, twin attention at every evaluation
    assert all({"gamma/G8", "gamma/D8"} <= set(r) for r in records if r["kind"] == "train")
    assert all(0 <= r["twin/G8"] <= 1 and 0 < r["twin_chance/D8"] < 1 for r in evals)
    assert "attention of queries on one twin to the other (chance): G8 " in out
    assert Image.open(run_dir / "curves.png").size[0] > 1000  # redrawn at every evaluation
    assert all(abs(r["loss_d"]) < 100 for r in records if r["kind"] == "train")
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_existing_run_folder_is_never_overwritten(tmp_path, capsys):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "precious.txt").write_text("keep me")
    assert run(tmp_path) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--resume" in err
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["precious.txt"]


def test_resume_reproduces_an_uninterrupted_run_exactly(tmp_path):
    settings = ["--run.steps", "6", "--run.checkpoint_every", "3", "--optim.d_steps", "2",
                "--run.sample_every", "100", "--run.eval_every", "100"]
    assert run(tmp_path, *settings, name="straight") == 0
    assert run(tmp_path, *settings[:1], "3", *settings[2:], name="halves") == 0
    assert train.main(["--resume", str(tmp_path / "halves"), "--run.steps", "6"]) == 0
    saved = json.loads((tmp_path / "halves" / "config.json").read_text())
    assert saved["run"]["steps"] == 6  # the resume's override, kept for the next resume
    assert "steps = 6" in (tmp_path / "halves" / "config.toml").read_text()
    a = checkpoint.load(tmp_path / "straight" / "checkpoints" / "step-00000006.pt")
    b = checkpoint.load(tmp_path / "halves" / "checkpoints" / "step-00000006.pt")
    ta, tb = tensors({k: a[k] for k in ("G", "D", "G_ema", "opt_G", "opt_D")}), tensors(
        {k: b[k] for k in ("G", "D", "G_ema", "opt_G", "opt_D")})
    assert ta.keys() == tb.keys() and len(ta) > 50
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert different == []
    # And the weights did change during the second half.
    c = tensors(checkpoint.load(tmp_path / "halves" / "checkpoints" / "step-00000003.pt")["G"])
    assert any(not torch.equal(value, tb["/G" + key]) for key, value in c.items())


def test_resume_with_another_architecture_is_refused(tmp_path, capsys):
    assert run(tmp_path) == 0
    capsys.readouterr()
    assert train.main(["--resume", str(tmp_path / "r"), "--model.g_ch", "8",
                       "--run.steps", "6"]) == 1
    err = capsys.readouterr().err
    assert "another architecture" in err and "model.g_ch: checkpoint 4, this run 8" in err
    assert len(err.strip().splitlines()) == 1


def test_resume_needs_a_run(tmp_path, capsys):
    assert train.main(["--resume", str(tmp_path / "nothing")]) == 2
    assert "no run there" in capsys.readouterr().err
    assert train.main(["--resume", str(tmp_path), "--preset", "tiny"]) == 2


@pytest.mark.parametrize("flag", ["--model.num_classes", "--model.resolution"])
def test_model_that_does_not_fit_the_data_is_refused(tmp_path, flag, capsys):
    value = "10" if flag.endswith("classes") else "64"
    assert run(tmp_path, flag, value) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # no empty run folder left behind


@pytest.mark.gpu
@pytest.mark.parametrize("compile_", ["false", "true"])
def test_cuda_run_with_bf16_channels_last_and_fused_adam(tmp_path, compile_):
    assert run(tmp_path, "--run.device", "cuda", "--run.compile", compile_, "--run.steps", "3",
               "--run.checkpoint_every", "3", "--run.sample_every", "3") == 0
    state = checkpoint.load(tmp_path / "r" / "checkpoints" / "step-00000003.pt")
    assert state["opt_G"]["param_groups"][0]["fused"] is True
    assert all(torch.isfinite(v).all() for v in state["G"].values() if v.is_floating_point())
    assert state["G"]["linear.parametrizations.weight.original"].dtype == torch.float32


def test_unconditional_model_trains_and_is_scored_without_classes(tmp_path, capsys):
    assert run(tmp_path, "--model.num_classes", "0", "--run.steps", "2") == 0
    out = capsys.readouterr().out
    assert "final quality (256 samples, EMA generator): well_formed" in out
    assert "class_match" not in out and "score" not in out
