"""`python -m accelerated.ablation`: the configurations differ as named; a tiny ablation runs,
is not retrained on a rerun, and its table and plot hold the numbers of the runs' metrics."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from scipy.stats import mannwhitneyu
from torch.nn.utils import parametrize

from accelerated import checkpoint
from accelerated import config as C
from accelerated.ablation import plot, variants
from accelerated.ablation.__main__ import main
from accelerated.ablation.runs import Schedule, plan
from accelerated.models import attention_layers, build_models
from accelerated.models.blocks import DBlock, GBlock

TINY = ["--preset", "tiny", "--steps", "4", "--eval-every", "2", "--eval-samples", "32",
        "--jobs", "1", "--no-progress"]


def exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argparse errors
        return stop.code


# --- the configurations -------------------------------------------------------------------


def configs() -> dict[str, C.TrainConfig]:
    runs = plan(variants.by_name(), 1, Schedule("builtin", 10, 5, 16), Path("unused"))
    return {run.variant.name: run.config() for run in runs}


def leaves(cfg: C.TrainConfig) -> dict[str, object]:
    return {f"{s}.{k}": v for s, entries in C.to_dict(cfg).items() for k, v in entries.items()}


def test_each_configuration_changes_only_what_it_names():
    built = configs()
    base = leaves(built["sagan"])
    assert base["model.g_attention"] == [8] and base["model.d_attention"] == [8]
    assert (base["optim.lr_d"], base["optim.lr_g"], base["optim.d_steps"]) == (4e-4, 1e-4, 1)
    assert base["model.sn_generator"] and base["model.attention_block"] == "attention"
    for variant in variants.VARIANTS[1:]:
        cfg = leaves(built[variant.name])
        differ = {k for k in base if base[k] != cfg[k] and not k.startswith("run.")}
        assert differ == set(variant.changes), variant.name


def sn_layers(model) -> int:
    return sum(parametrize.is_parametrized(m, "weight") for m in model.modules())


def attended_sizes(G, cfg) -> list[int]:
    """Side of the feature map each attention layer of G attends over, from a forward pass."""
    layers = attention_layers(G)
    for layer in layers:
        layer.store_attention = True
    G.eval()
    with torch.no_grad():
        G(torch.randn(2, cfg.model.z_dim), torch.tensor([0, 1]))
    return [int(layer.last_attention.shape[1] ** 0.5) for layer in layers]


def test_the_models_have_what_the_names_say():
    built = configs()
    models = {name: build_models(cfg.model) for name, cfg in built.items()}
    G, D = models["sagan"]
    assert attended_sizes(G, built["sagan"]) == [8] and len(attention_layers(D)) == 1
    G, D = models["no-attention"]
    assert attention_layers(G) == attention_layers(D) == []
    assert all(m.upsample for m in G.modules() if isinstance(m, GBlock))
    assert attended_sizes(models["attention-16"][0], built["attention-16"]) == [16]
    G, D = models["residual-8"]
    assert attention_layers(G) == attention_layers(D) == []
    assert sum(not m.upsample for m in G.modules() if isinstance(m, GBlock)) == 1
    assert sum(not m.downsample for m in D.modules() if isinstance(m, DBlock)) == 2  # + 4x4
    assert sn_layers(models["sagan"][0]) > 0 and sn_layers(models["sn-d-only"][0]) == 0
    assert sn_layers(models["sn-d-only"][1]) == sn_layers(models["sagan"][1])
    equal = built["equal-lr"].optim
    assert equal.lr_d == equal.lr_g == built["sagan"].optim.lr_g


# --- a tiny ablation, end to end ----------------------------------------------------------


def rewrite_scores(folder: Path, scores: dict[int, float]) -> None:
    """Give the run's eval records known scores; and log step 2 twice, as a resumed run does
    (the later record must win)."""
    lines, out = (folder / "metrics.jsonl").read_text().splitlines(), []
    for line in lines:
        record = json.loads(line)
        if record["kind"] == "eval":
            if record["step"] == 2:
                out.append(json.dumps({**record, "score": 0.99}))  # overwritten below
            record["score"] = scores[record["step"]]
        out.append(json.dumps(record))
    (folder / "metrics.jsonl").write_text("\n".join(out) + "\n")


@pytest.mark.slow
def test_tiny_ablation_runs_resumes_and_tabulates(tmp_path, capsys):
    argv = [*TINY, "--configs", "no-attention,sagan", "--seeds", "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    runs = tmp_path / "runs"
    names = ["sagan-seed0", "sagan-seed1", "no-attention-seed0", "no-attention-seed1"]
    assert sorted(p.name for p in runs.iterdir()) == sorted(names)
    for name in names:
        assert checkpoint.list_checkpoints(runs / name)[-1] == checkpoint.path_for(runs / name, 4)
    saved = json.loads((runs / "no-attention-seed1" / "config.json").read_text())
    assert saved["model"]["g_attention"] == [] and saved["run"]["seed"] == 1

    # Known scores per (run, step): the table must be computed from them.
    scores = {"sagan-seed0": {2: 0.5, 4: 0.25}, "sagan-seed1": {2: 0.125, 4: 0.75},
              "no-attention-seed0": {2: 0.0, 4: 0.0}, "no-attention-seed1": {2: 0.5, 4: 0.5}}
    for name, by_step in scores.items():
        rewrite_scores(runs / name, by_step)
    stamps = {name: (runs / name / "metrics.jsonl").stat().st_mtime_ns for name in names}
    # A config saved by older code, without a newer setting, still counts as the same run.
    saved = json.loads((runs / names[0] / "config.json").read_text())
    del saved["run"]["grid_columns"]
    (runs / names[0] / "config.json").write_text(json.dumps(saved))
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "4 done, 0 to train" in err and "starting" not in err
    assert stamps == {name: (runs / name / "metrics.jsonl").stat().st_mtime_ns for name in names}

    table = json.loads((tmp_path / "ablation.json").read_text())
    rows = {row["config"]: row for row in table["configurations"]}
    assert list(rows) == ["sagan", "no-attention"]  # the order of VARIANTS
    sagan = rows["sagan"]
    assert sagan["final_score"]["mean"] == pytest.approx(0.5)
    assert sagan["final_score"]["std"] == pytest.approx(0.5 ** 0.5 / 2)  # sample std of .25, .75
    assert (sagan["final_score"]["min"], sagan["final_score"]["max"]) == (0.25, 0.75)
    assert sagan["best_score"]["mean"] == pytest.approx((0.5 + 0.75) / 2)
    assert [r["best_step"] for r in sagan["runs"]] == [2, 4]
    last = [[json.loads(line) for line in (runs / name / "metrics.jsonl").open()][-1]
            for name in names[:2]]
    assert [r["kind"] for r in last] == ["eval", "eval"]
    assert sagan["final_symmetry"]["mean"] == pytest.approx((last[0]["symmetry"]
                                                             + last[1]["symmetry"]) / 2)
    spread = {"mean": 0.25, "std": pytest.approx(0.5 ** 0.5 / 2), "min": 0.0, "max": 0.5}
    assert rows["no-attention"]["best_score"] == spread
    with open(tmp_path / "ablation.csv") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert [r["config"] for r in csv_rows] == ["sagan", "no-attention"]
    assert float(csv_rows[0]["best_score_max"]) == 0.75
    markdown = (tmp_path / "ablation.md").read_text()
    assert "| sagan |" in markdown and "0.500 ± 0.354 (0.250–0.750)" in markdown
    assert table["steps"] == 4 and table["seeds"] == 2
    # the baseline tested against the other configuration, on the known final scores
    (test,) = table["comparisons"]["final_score"]
    assert test["variant"] == "no-attention" and test["difference"] == pytest.approx(0.25)
    assert test["p"] == pytest.approx(mannwhitneyu([0.25, 0.75], [0.0, 0.5],
                                                   alternative="greater").pvalue)
    assert "| sagan vs |" in markdown and "| no-attention | 2 vs 2 | +0.250 (" in markdown
    assert 0 <= sagan["final_diversity"]["mean"] <= 1 and set(sagan["final_twin"]) == {"G8", "D8"}
    assert rows["no-attention"]["final_twin"] == {}

    steps, mean, low, high = plot.curve(sagan, "score")
    assert (steps, mean, low, high) == ([2, 4], [0.3125, 0.5], [0.125, 0.25], [0.5, 0.75])
    with Image.open(tmp_path / "ablation.png") as image:
        assert image.size[0] > 600 and image.size[1] > 400

    # --table-only: a third seed is planned but nothing trains; the table has the two done.
    capsys.readouterr()
    assert main([*argv[:-4], "--seeds", "3", *argv[-2:], "--table-only"]) == 0
    assert "4 done, 2 left untrained (--table-only)" in capsys.readouterr().err
    assert not (runs / "sagan-seed2").exists()
    table = json.loads((tmp_path / "ablation.json").read_text())
    assert [row["seeds"] for row in table["configurations"]] == [2, 2]

    # Other settings in the same folder are refused before anything trains.
    assert main([*argv[:3], "6", *argv[4:]]) == 2
    assert "was trained with run.steps = 4" in capsys.readouterr().err


@pytest.mark.slow
def test_a_stopped_ablation_saves_checkpoints_and_resumes_them(tmp_path):
    flags = ["--preset", "tiny", "--steps", "5000", "--eval-every", "5000", "--eval-samples", "16",
             "--configs", "residual-8", "--seeds", "1", "--jobs", "1", "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "accelerated.ablation", *flags,
                             "--out", str(tmp_path)], stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "runs" / "residual-8-seed0" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err
    assert "run the same command again to continue" in err and "no run has finished" in err
    (run,) = plan(variants.by_name(["residual-8"]), 1, Schedule("tiny", 5000, 5000, 16), tmp_path)
    stopped_at = checkpoint.list_checkpoints(run.folder)[-1]
    assert stopped_at != checkpoint.path_for(run.folder, 0)  # saved when stopped
    assert run.state() == "partial" and run.train_args() == ["--resume", str(run.folder)]


@pytest.mark.parametrize(("flags", "message"), [
    (["--seeds", "0"], "--seeds: must be at least 1"),
    (["--steps", "many"], "--steps: expected a whole number"),
    (["--configs", "sagan,nope"], "unknown configuration nope"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--preset", "imagenet128"], "built-in data set only"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_flags_are_one_line_errors(tmp_path, capsys, flags, message):
    assert exit_code([*flags, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m accelerated.ablation: error:") and message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("below", ["", "sub"])
def test_out_that_is_a_file_is_a_one_line_error(tmp_path, capsys, below):
    taken = (tmp_path / "taken").resolve()
    taken.write_text("a file the user keeps")
    out = taken / below
    assert exit_code([*TINY, "--configs", "sagan", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"python -m accelerated.ablation: error: --out {out}: {taken} is a file, not "
                   f"a folder; choose another --out\n")
    assert taken.read_text() == "a file the user keeps"
