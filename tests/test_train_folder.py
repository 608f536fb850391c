"""Training end to end on a small folder of real photographs: prepare, train, resume, sample."""

import json

import numpy as np
from PIL import Image
from real_images import SHIPPED, photo

from accelerated import checkpoint, sample, train
from accelerated.data import open_dataset


def photo_folder(root, per_class: int = 6):
    """ImageNet layout: one subfolder per class, each cut from another shipped photograph."""
    for k, source in enumerate(SHIPPED[:2]):
        folder = root / f"class_{k}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            photo(48 + 8 * i, 40, seed=i, source=source).save(folder / f"{i}.jpg")
    return root


def test_a_folder_of_real_images_trains_resumes_and_samples(tmp_path, capsys):
    images = photo_folder(tmp_path / "photos")
    flags = ["--preset", "tiny", "--data.source", str(images), "--data.cache_dir",
             str(tmp_path / "cache"), "--model.num_classes", "2", "--run.out_dir",
             str(tmp_path / "runs"), "--run.name", "photos", "--run.steps", "2"]
    assert train.main(flags) == 0
    run_dir = tmp_path / "runs" / "photos"
    assert train.main(["--resume", str(run_dir), "--run.steps", "4"]) == 0
    state = checkpoint.load(run_dir / "checkpoints" / "step-00000004.pt")
    assert state["step"] == 4 and state["config"]["data"]["source"] == str(images)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]
    assert (run_dir / "samples" / "step-00000004.png").is_file()

    # The prepared copy holds the photographs, centre-cropped and resized, by class.
    data = open_dataset(str(images), 16, cache_dir=str(tmp_path / "cache"))
    assert len(data) == 12 and data.num_classes == 2
    pixels = np.stack([data[i][0].numpy() for i in range(len(data))])
    labels = np.array([int(data[i][1]) for i in range(len(data))])
    assert np.bincount(labels).tolist() == [6, 6]
    assert pixels.std() > 0.1  # photographs, not blank frames
    by_class = [pixels[labels == k].mean(axis=0) for k in (0, 1)]
    assert np.abs(by_class[0] - by_class[1]).mean() > 0.1  # two different photographs

    capsys.readouterr()
    assert sample.main([str(run_dir), "--out", str(tmp_path / "out"), "--class-sheet"]) == 0
    sheet = Image.open(tmp_path / "out" / "class_sheet.png")
    assert 3 * sheet.height < sheet.width < 5 * sheet.height  # 2 rows of 8 columns
