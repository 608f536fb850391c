"""The prepared array format: round trip, memory mapping, and clear errors for bad folders."""

import json
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays as np_arrays

from accelerated.data import open_dataset
from accelerated.data.arrays import (
    IMAGES,
    open_arrays,
    save_arrays,
    shrink_images,
    to_model_range,
)

NAMES = ["a", "b", "c"]


def write(folder, n=6, resolution=8, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, resolution, resolution, 3), dtype=np.uint8)
    labels = rng.integers(0, len(NAMES), n)
    save_arrays(folder, images, labels, NAMES, source="test")
    return images, labels


@given(
    images=np_arrays(np.uint8, st.tuples(st.integers(1, 5), st.just(4), st.just(4), st.just(3))),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_is_exact(tmp_path_factory, images, seed):
    folder = tmp_path_factory.mktemp("arrays")
    labels = np.random.default_rng(seed).integers(0, len(NAMES), len(images))
    save_arrays(folder, images, labels, NAMES, source="test")
    data = open_dataset(str(folder), 4)
    assert isinstance(data.images, np.memmap)
    assert data.class_names == NAMES and data.num_classes == 3 and len(data) == len(images)
    for i in range(len(images)):
        x, y = data[i]
        assert x.dtype == torch.float32 and x.shape == (3, 4, 4) and y.dtype == torch.int64
        back = ((x + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.array_equal(back, images[i]) and y.item() == labels[i]


def test_a_batch_converts_as_its_images_do_one_by_one():
    images = np.random.default_rng(3).integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    batch = to_model_range(images)
    assert batch.shape == (5, 3, 4, 4) and batch.dtype == np.float32
    assert batch.min() >= -1 and batch.max() <= 1
    assert to_model_range(np.full((1, 1, 3), 255, np.uint8)).min() == 1
    for image, converted in zip(images, batch, strict=True):
        assert np.array_equal(to_model_range(image), converted)
        assert np.array_equal(image.transpose(2, 0, 1), ((converted + 1) * 127.5).round())


@given(n=st.integers(1, 12), data=st.data(), version=st.sampled_from([(1, 0), (2, 0)]))
def test_shrink_keeps_the_first_rows_in_place(tmp_path_factory, n, data, version):
    count = data.draw(st.integers(0, n))
    folder = tmp_path_factory.mktemp("shrink")
    images = np.random.default_rng(n).integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
    np.lib.format.open_memmap(folder / IMAGES, "w+", np.uint8, images.shape, version=version)[:] = (
        images
    )
    shrink_images(folder, count)
    assert np.array_equal(np.load(folder / IMAGES), images[:count])
    assert np.load(folder / IMAGES, mmap_mode="r").shape == (count, 4, 4, 3)
    with pytest.raises(ValueError, match="cannot shrink"):
        shrink_images(folder, count + 1)


def test_meta_records_the_data_set(tmp_path):
    write(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta == {"format": "sagan-arrays", "version": 1, "resolution": 8, "count": 6,
                    "class_names": NAMES, "source": "test"}


def test_pickled_dataset_reopens_the_memory_map_instead_of_copying_pixels(tmp_path):
    images, _ = write(tmp_path, n=50, resolution=32)
    data = open_arrays(tmp_path)
    blob = pickle.dumps(data)
    assert len(blob) < images.nbytes / 10
    copy = pickle.loads(blob)
    assert isinstance(copy.images, np.memmap) and torch.equal(copy[7][0], data[7][0])


def test_dataloader_batches(tmp_path):
    write(tmp_path, n=10)
    loader = torch.utils.data.DataLoader(open_arrays(tmp_path), batch_size=4)
    x, y = next(iter(loader))
    assert x.shape == (4, 3, 8, 8) and y.shape == (4,)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "images.npy").unlink(), "images.npy is missing"),
        (lambda f: (f / "labels.npy").unlink(), "labels.npy is missing"),
        (lambda f: (f / "meta.json").unlink(), "meta.json is missing"),
        (lambda f: (f / "meta.json").write_text("{not json"), "not valid JSON"),
        (lambda f: (f / "images.npy").write_bytes(b"garbage"), "not a readable .npy"),
        (lambda f: np.save(f / "images.npy", np.zeros((6, 8, 8, 3), np.float32)), "uint8"),
        (lambda f: np.save(f / "images.npy", np.zeros((6, 8, 8), np.uint8)), "uint8"),
        (lambda f: np.save(f / "labels.npy", np.zeros(6, np.int32)), "int64"),
        (lambda f: np.save(f / "labels.npy", np.zeros(5, np.int64)), "one label per image"),
        (lambda f: np.save(f / "labels.npy", np.full(6, 3, np.int64)), r"labels in \[3, 3\]"),
        (lambda f: np.save(f / "labels.npy", np.full(6, -1, np.int64)), "labels in"),
        (lambda f: np.save(f / "images.npy", np.zeros((7, 8, 8, 3), np.uint8)), "one label"),
    ],
)
def test_bad_folders_name_the_file_and_the_fix(tmp_path, damage, message):
    write(tmp_path)
    damage(tmp_path)
    with pytest.raises(ValueError, match=message) as error:
        open_arrays(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_meta_disagreeing_with_the_arrays_is_an_error(tmp_path):
    write(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "count": 99}))
    with pytest.raises(ValueError, match="count 99"):
        open_arrays(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "class_names": []}))
    with pytest.raises(ValueError, match="class_names"):
        open_arrays(tmp_path)


def test_wrong_resolution_and_empty_sets_are_errors(tmp_path):
    write(tmp_path / "ok")
    with pytest.raises(ValueError, match="prepared at 8x8, not 16x16"):
        open_dataset(str(tmp_path / "ok"), 16)
    save_arrays(tmp_path / "empty", np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0), NAMES, "x")
    with pytest.raises(ValueError, match="no images"):
        open_arrays(tmp_path / "empty")
    with pytest.raises(ValueError, match="neither 'builtin' nor a folder"):
        open_dataset(str(tmp_path / "nowhere"), 8)


def test_bench_measures_every_way_and_refuses_tiny_sets(tmp_path):
    from accelerated.bench.loader import measure

    write(tmp_path, n=24)
    threads = torch.get_num_threads()
    rates = measure(tmp_path, batch_size=8, workers=(0,), repeats=1)
    assert torch.get_num_threads() == threads
    assert list(rates) == ["raw memmap, slices", "raw memmap, shuffled", "DataLoader, workers=0",
                           "DataLoader, workers=0, 1 thread"]
    assert all(rate > 0 for rate in rates.values())
    with pytest.raises(ValueError, match="at least 48"):
        measure(tmp_path, batch_size=16)
