"""`accelerated.figures.panels`: a run's curves figure cut into its panels, each one whole."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from accelerated.figures import curves
from accelerated.figures.panels import split_panels


def records(with_fid: bool) -> list[dict]:
    rng = np.random.default_rng(0)
    found = [{"kind": "train", "step": s, "loss_d": float(rng.random()), "loss_g": 2.0 + s / 500,
              "gamma/G8": -s / 1000} for s in range(0, 1001, 50)]  # fmt: skip
    for s in range(200, 1001, 200):
        found.append({"kind": "eval", "step": s, "score": s / 1000, "diversity": 0.5,
                      "agreement": 0.9, **({"fid": 1 / s} if with_fid else {})})  # fmt: skip
    return found


@pytest.mark.parametrize("with_fid", [True, False])
def test_a_curves_figure_splits_into_its_panels(tmp_path, with_fid):
    logged = records(with_fid)
    image = plt.imread(curves.draw(logged, tmp_path))
    pieces = split_panels(image)
    assert len(pieces) == len(curves.panels(logged))
    assert sum(p.shape[1] for p in pieces) == image.shape[1]  # nothing lost, nothing repeated
    for piece in pieces:
        assert len(split_panels(piece)) == 1  # each piece holds one whole frame


def test_an_image_without_panels_is_refused():
    with pytest.raises(ValueError, match="spines"):
        split_panels(np.ones((50, 80, 3)))
