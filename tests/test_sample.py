"""`python -m accelerated.sample`: images, grids and class sheets from a trained run."""

import pytest
from PIL import Image

from accelerated import sample, train
from accelerated.figures import images as figures


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
