"""`python -m accelerated.sample`: images, grids and class sheets from a trained run."""

import os
import resource
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from accelerated import checkpoint, sample, train
from accelerated.figures import images as figures
from accelerated.models import generate


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert train.main(["--preset", "tiny", "--run.out_dir", str(out), "--run.name", "s",
                       "--run.steps", "2", "--run.eval_every", "100"]) == 0
    return out / "s"


def test_n_single_images(run_dir, tmp_path, capsys):
    assert sample.main([str(run_dir), "--out", str(tmp_path), "--n", "5"]) == 0
    files = sorted(tmp_path.glob("sample-*.png"))
    assert [f.name for f in files] == [f"sample-{i:05d}.png" for i in range(5)]
    assert Image.open(files[0]).size == (16, 16)  # the model's resolution
    assert "wrote 5 images" in capsys.readouterr().out


def test_grid_is_the_default(run_dir, tmp_path):
    assert sample.main([str(run_dir / "checkpoints" / "step-00000002.pt"), "--out",
                        str(tmp_path)]) == 0
    scale = figures.upscale_for(16)
    side = 8 * (16 * scale + figures.PAD) + figures.PAD
    assert Image.open(tmp_path / "grid.png").size == (side, side)


def test_class_sheet_has_one_row_per_class(run_dir, tmp_path):
    assert sample.main([str(run_dir), "--out", str(tmp_path), "--class-sheet",
                        "--columns", "3"]) == 0
    width, height = Image.open(tmp_path / "class_sheet.png").size
    tile = 16 * figures.upscale_for(16) + figures.PAD
    assert (width, height) == (3 * tile + figures.PAD, 4 * tile + figures.PAD)  # 4 classes


def test_same_seed_same_images_and_ema_differs_from_raw(run_dir, tmp_path):
    for name, extra in (("a", []), ("b", []), ("raw", ["--no-ema"]), ("other", ["--seed", "1"])):
        assert sample.main([str(run_dir), "--out", str(tmp_path / name), "--n", "2",
                            "--class", "1", *extra]) == 0
    pixels = {name: Image.open(tmp_path / name / "sample-00000.png").tobytes()
              for name in ("a", "b", "raw", "other")}
    assert pixels["a"] == pixels["b"]
    assert pixels["a"] != pixels["other"]
    assert pixels["a"] != pixels["raw"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--n", "0"], "--n must be at least 1"),
        (["--class", "7"], "--class 7: the model has classes 0..3"),
        (["--class-sheet", "--classes", "0,9"], "use classes among 0..3"),
        (["--n", "2", "--grid"], "not allowed with argument"),
        (["--class-sheet", "--columns", "2000"], "a sheet of 8000 images is more than one picture"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(run_dir, tmp_path, argv, needle, capsys):
    try:
        code = sample.main([str(run_dir), "--out", str(tmp_path), *argv])
    except SystemExit as exit_info:  # argparse's own checks
        code = exit_info.code
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_missing_checkpoint(tmp_path, capsys):
    assert sample.main([str(tmp_path / "none.pt"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_many_images_come_in_batches_equal_to_one_draw(run_dir, tmp_path):
    """600 images (3 batches): the images one draw of all the labels, then all the noise, gives
    (what sample did before it drew in batches)."""
    n = 600
    assert sample.main([str(run_dir), "--out", str(tmp_path), "--n", str(n), "--seed", "3",
                        "--device", "cpu"]) == 0
    G, model, _ = checkpoint.load_generator(run_dir, torch.device("cpu"))
    gen = torch.Generator().manual_seed(3)
    y = torch.randint(model.num_classes, (n,), generator=gen)
    z = torch.randn(n, model.z_dim, generator=gen)
    expected = figures.to_uint8(generate(G, z, y))
    written = np.stack([np.asarray(Image.open(tmp_path / f"sample-{i:05d}.png"))
                        for i in range(n)])
    assert np.array_equal(written, expected)


def test_a_hundred_million_images_start_in_bounded_memory(run_dir, tmp_path):
    """`--n 100000000` asked for 51 GB of noise at once (a traceback, or the OOM killer): now it
    writes batch after batch, in a process whose address space is capped at 16 GB."""
    out = tmp_path / "many"
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    cap = 16 * 2**30 if hard == resource.RLIM_INFINITY else min(16 * 2**30, hard)

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))

    proc = subprocess.Popen(
        [sys.executable, "-m", "accelerated.sample", str(run_dir), "--out", str(out), "--n",
         "100000000", "--device", "cpu"], preexec_fn=limited, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    third_batch = out / "sample-00512.png"
    try:
        while proc.poll() is None and not third_batch.exists():
            time.sleep(0.05)  # waits for an event: the file of the third batch, or the end
        running = proc.poll() is None
    finally:
        proc.kill()
        err = proc.communicate()[1]
    assert running, f"exit {proc.returncode}: {err}"


@pytest.fixture(scope="module")
def diverged_run(tmp_path_factory):
    """A run whose generator gives NaN: a learning rate of 1e30 (the issue's reproduction)."""
    out = tmp_path_factory.mktemp("diverged")
    assert train.main(["--preset", "tiny", "--run.out_dir", str(out), "--run.name", "nan",
                       "--run.steps", "2", "--run.eval_every", "100", "--run.sample_every", "100",
                       "--optim.lr_g", "1e30"]) == 0
    return out / "nan"


@pytest.mark.parametrize("what", [["--n", "3"], [], ["--class-sheet"]])
def test_a_diverged_generator_is_one_line_and_exit_1(diverged_run, tmp_path, capsys, what):
    """It wrote black images and exited 0."""
    assert sample.main([str(diverged_run), "--out", str(tmp_path / "out"), *what]) == 1
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and message.startswith("python -m accelerated.sample: error: ")
    assert "has diverged" in message and "NaN or infinite values" in message
    assert list((tmp_path / "out").iterdir()) == []
