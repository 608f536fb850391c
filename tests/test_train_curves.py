"""A run's curves (`accelerated.figures.curves`): the panels follow what was logged."""

import json

from PIL import Image

from accelerated.figures import curves
from accelerated.training.metrics_log import read_records


def write(folder, records):
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_panels_follow_the_records_and_a_redone_step_keeps_its_later_value(tmp_path):
    records = [
        {"step": 1, "kind": "train", "loss_d": 1.0, "loss_g": 0.5, "gamma/G8": 0.0},
        {"step": 2, "kind": "train", "loss_d": 0.9, "loss_g": 0.6, "gamma/G8": 0.1},
        {"step": 2, "kind": "eval", "score": 0.2, "twin/G8": 0.3, "twin_chance/G8": 0.2},
        {"step": 2, "kind": "train", "loss_d": 0.7, "loss_g": 0.6, "gamma/G8": 0.2},  # resumed
    ]
    titles = [title for title, _ in curves.panels(records)]
    assert titles == ["losses (hinge)", "attention gamma", "quality (built-in data)",
                      "twin attention (dotted: chance)"]  # no FID, no diversity logged
    assert curves._series(records, "train", "gamma/G8") == ([1, 2], [0.0, 0.2])
    write(tmp_path, records)
    path = curves.draw(read_records(tmp_path), tmp_path)
    with Image.open(path) as image:
        assert image.size[0] > 4 * image.size[1] / 2


def test_nothing_logged_draws_nothing(tmp_path):
    assert curves.draw(read_records(tmp_path), tmp_path) is None
    assert not (tmp_path / curves.FILE).exists()
