"""The built-in Mirror-twins data set: determinism, balance, and its exact quality measure."""

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from accelerated.data import open_dataset
from accelerated.data.builtin import CLASS_NAMES, PALETTE, generate, quality, templates

resolutions = st.sampled_from([16, 24, 32, 40, 48, 56, 64])


def as_float(images: np.ndarray) -> np.ndarray:
    """uint8 (B, R, R, 3) -> float (B, 3, R, R) in [-1, 1]."""
    return images.transpose(0, 3, 1, 2) / 127.5 - 1


def test_generate_is_deterministic_in_the_seed():
    a, la = generate(64, 16, seed=3)
    b, lb = generate(64, 16, seed=3)
    c, _ = generate(64, 16, seed=4)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)
    assert a.dtype == np.uint8 and a.shape == (64, 16, 16, 3) and la.dtype == np.int64


@given(n=st.integers(1, 203), seed=st.integers(0, 2**32 - 1))
def test_classes_are_balanced(n, seed):
    _, labels = generate(n, 16, seed)
    counts = np.bincount(labels, minlength=len(CLASS_NAMES))
    assert counts.max() - counts.min() <= 1


@given(resolution=resolutions)
def test_shapes_are_distinct_symmetric_and_fill_their_box(resolution):
    shapes = templates(resolution)
    assert np.array_equal(shapes, shapes[:, :, ::-1]) and np.array_equal(shapes, shapes[:, ::-1])
    for shape in shapes:
        assert shape[0].any() and shape[-1].any() and shape[:, 0].any() and shape[:, -1].any()
    flat = shapes.reshape(len(shapes), -1)
    differing = (flat[:, None] != flat[None]).mean(axis=2) + np.eye(len(shapes))
    assert differing.min() > 0.15  # far beyond the 0.85 accuracy threshold of quality()


@given(resolution=st.sampled_from([16, 24, 32]), seed=st.integers(0, 2**32 - 1))
@example(resolution=16, seed=193)  # diversity 0.891: below the old bound of 0.9
def test_real_data_scores_one(resolution, seed):
    images, labels = generate(120, resolution, seed)
    q = quality(as_float(images), labels)
    assert q["well_formed"] == q["class_match"] == q["agreement"] == q["score"] == 1.0
    # 120 real images' diversity is a random count over its expectation. Measured over seeds
    # 0-399 at R = 16: mean 0.988, SD 0.018, lowest 0.891 (seed 193); at R = 24 and 32 the SD is
    # 0.013 and 0.009. The bound sits 7 SDs below the mean at R = 16: a generator repeating
    # images scores far lower (test_mode_collapse_has_low_diversity).
    assert q["diversity"] > 0.86 and q["symmetry"] == pytest.approx(1.0)


def blur(x: np.ndarray, w: float) -> np.ndarray:
    """Mix each pixel with its four neighbours (weight w each): a mild blur."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    neighbours = padded[..., :-2, 1:-1] + padded[..., 2:, 1:-1] + padded[..., 1:-1, :-2]
    return (1 - 4 * w) * x + w * (neighbours + padded[..., 1:-1, 2:])


def test_real_images_pass_after_mild_blur_and_noise_and_through_torch():
    images, labels = generate(200, 16, seed=0)
    noise = np.random.default_rng(0).normal(0, 0.1, (200, 3, 16, 16))
    x = np.clip(blur(as_float(images), 0.1) + noise, -1, 1)
    q = quality(torch.from_numpy(x).float(), torch.from_numpy(labels))
    assert q["score"] == 1.0


def test_blank_and_grey_images_score_zero():
    _, labels = generate(50, 16, seed=0)
    for value in (-1.0, -0.4, 0.0):
        q = quality(np.full((50, 3, 16, 16), value), labels)
        assert q["well_formed"] == q["symmetry"] == 0.0


def test_noise_scores_zero():
    _, labels = generate(200, 16, seed=0)
    noise = np.random.default_rng(0).uniform(-1, 1, (200, 3, 16, 16))
    q = quality(noise, labels)
    assert q["well_formed"] == q["score"] == q["diversity"] == 0.0
    assert abs(q["symmetry"]) < 0.05


def test_halves_of_different_images_rarely_agree():
    images, labels = generate(400, 16, seed=0)
    x = as_float(images)
    x[..., 8:] = x[np.random.default_rng(0).permutation(400)][..., 8:]
    q = quality(x, labels)
    assert q["well_formed"] == 1.0
    assert q["agreement"] < 0.05 and q["score"] < 0.05 and q["symmetry"] < 0.2


def test_recoloured_or_shifted_twin_breaks_agreement():
    images, labels = generate(100, 16, seed=1)
    recoloured = images.copy()
    right = recoloured[:, :, 8:]
    on = right.max(axis=-1) > 0
    for i in range(len(images)):  # next palette colour for the right-hand twin
        k = np.flatnonzero((PALETTE == right[i][on[i]][0]).all(axis=1))[0]
        right[i][on[i]] = PALETTE[(k + 1) % len(PALETTE)]
    q = quality(as_float(recoloured), labels)
    assert q["well_formed"] == 1.0 and q["agreement"] == 0.0
    top = (images.max(axis=(2, 3)) > 0).argmax(axis=1)  # first row of the objects
    movable = top < 16 - templates(16).shape[1] - 1  # one row lower is still a real placement
    shifted = images[movable].copy()
    shifted[:, :, 8:] = np.roll(shifted[:, :, 8:], 1, axis=1)  # the right twin one row lower
    q = quality(as_float(shifted), labels[movable])
    assert movable.sum() > 50 and q["well_formed"] == 1.0 and q["agreement"] == 0.0


def test_wrong_labels_fail_class_match_only():
    images, labels = generate(100, 16, seed=2)
    q = quality(as_float(images), (labels + 1) % len(CLASS_NAMES))
    assert q["class_match"] == q["score"] == 0.0 and q["agreement"] == 1.0


def test_mode_collapse_has_low_diversity():
    images, labels = generate(400, 16, seed=0)
    collapsed = np.repeat(as_float(images[:1]), 400, axis=0)
    q = quality(collapsed, labels)
    assert q["agreement"] == 1.0
    assert 0.15 < q["class_match"] < 0.35  # one class of four
    assert q["diversity"] < 0.05


def test_quality_rejects_bad_shapes_and_resolutions():
    with pytest.raises(ValueError, match="labels"):
        quality(np.zeros((4, 3, 16, 16)), np.zeros(3))
    with pytest.raises(ValueError, match="multiple of 8"):
        quality(np.zeros((4, 3, 20, 20)), np.zeros(4))
    with pytest.raises(ValueError, match="multiple of 8"):
        generate(4, 8)


def test_open_builtin_items_round_trip_to_a_perfect_score():
    data = open_dataset("builtin", 16)
    assert data.num_classes == len(data.class_names) == 4
    items = [data[i] for i in range(128)]
    x = torch.stack([image for image, _ in items])
    y = torch.stack([label for _, label in items])
    assert x.dtype == torch.float32 and x.shape == (128, 3, 16, 16) and y.dtype == torch.int64
    assert x.min() == -1 and x.max() == 1
    assert quality(x, y)["score"] == 1.0
