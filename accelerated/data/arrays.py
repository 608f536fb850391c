r"""The prepared data set format: a folder of memory-mapped NumPy arrays, and its torch Dataset.

A prepared data set is a folder holding

| file | content |
|---|---|
| `images.npy` | uint8 $(N, R, R, 3)$, RGB, read with `np.load(mmap_mode="r")` |
| `labels.npy` | int64 $(N,)$, class indices in $[0, K)$ |
| `meta.json` | `format` ("sagan-arrays"), `version`, `resolution`, `count`, `class_names`, source |

`python -m accelerated.data.prepare` writes one from a folder of images (and puts its
`report.json` beside these files). Images stay on disk and are paged in as the loader reads them,
so a data set larger than memory works; each item is converted to float32 CHW in $[-1, 1]$.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

FORMAT = "sagan-arrays"
VERSION = 1
IMAGES, LABELS, META = "images.npy", "labels.npy", "meta.json"
HOW_TO_MAKE = "make one with: python -m accelerated.data.prepare SRC_FOLDER OUT --resolution R"


def to_model_range(pixels: np.ndarray) -> np.ndarray:
    """uint8 images (..., R, R, 3) -> float32 (..., 3, R, R) in [-1, 1], as the models take them:
    x = p / 127.5 - 1 maps {0, ..., 255} onto [-1, 1]. In NumPy (one thread), not torch: torch
    splits an op this size across its threads, which costs far more than it saves when the
    loader runs beside training (workers=0)."""
    x = np.moveaxis(pixels, -1, -3).astype(np.float32, order="C")
    x /= 127.5
    x -= 1
    return x


class ArrayDataset(Dataset):
    """Items (float32 (3, R, R) in [-1, 1], int64 label) from uint8 (N, R, R, 3) images.

    `images` may be an in-memory array or a memory map; a dataset opened from a folder keeps its
    path and re-opens the map in each DataLoader worker instead of pickling the pixels."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, class_names, path=None):
        self.images = images
        self.labels = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.resolution = images.shape[1]
        self.path = path

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = self.images[index]  # (R, R, 3) uint8, paged in from the memory map
        return torch.from_numpy(to_model_range(pixels)), self.labels[index]

    def __getstate__(self):
        state = dict(self.__dict__)
        if self.path is not None:
            state["images"] = None  # re-opened from disk by __setstate__
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.path is not None:
            self.images = np.load(Path(self.path) / IMAGES, mmap_mode="r")


def create_images(folder: Path, count: int, resolution: int) -> np.ndarray:
    """A writable uint8 (count, R, R, 3) memory map at `folder/images.npy`, to fill in place.
    Raises OSError naming the file when the disk has no room for it."""
    path = Path(folder) / IMAGES
    images = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.uint8, shape=(count, resolution, resolution, 3)
    )
    _reserve(path)
    return images


def _reserve(path: Path) -> None:
    """Allocate the disk blocks of `path` now. The memory map's file is sparse: on a full disk,
    writing the map later kills the process with SIGBUS, with no message and nothing saved."""
    if not hasattr(os, "posix_fallocate"):  # macOS, Windows: no reservation
        return
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                return  # a file system that cannot reserve: write as before
            raise OSError(err.errno, f"{os.strerror(err.errno)}: the images need "
                          f"{size / 1e6:,.1f} MB; free some space or write elsewhere",
                          str(path)) from None


def shrink_images(folder: Path, count: int) -> None:
    """Keep the first `count` rows of `folder/images.npy` in place, without copying the pixels:
    rewrite the shape in the .npy header (padded with spaces to its old length) and cut the file."""
    path = Path(folder) / IMAGES
    with open(path, "r+b") as f:
        major, _ = np.lib.format.read_magic(f)
        header_start = f.tell() + (2 if major == 1 else 4)  # after the header-length field
        read_header = getattr(np.lib.format, f"read_array_header_{major}_0")
        shape, fortran_order, dtype = read_header(f)
        if not 0 <= count <= shape[0]:
            raise ValueError(f"cannot shrink {path} from {shape[0]} to {count} rows")
        data_start = f.tell()
        header = repr({"descr": np.lib.format.dtype_to_descr(dtype),
                       "fortran_order": fortran_order, "shape": (count, *shape[1:])})
        f.seek(header_start)
        f.write(header.ljust(data_start - header_start - 1).encode("latin1") + b"\n")
        f.truncate(data_start + count * int(np.prod(shape[1:])) * dtype.itemsize)


def finish(folder: Path, labels: np.ndarray, class_names, source: str) -> None:
    """Write labels.npy and meta.json beside a filled images.npy."""
    folder = Path(folder)
    images = np.load(folder / IMAGES, mmap_mode="r")
    np.save(folder / LABELS, np.asarray(labels, dtype=np.int64))
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "resolution": int(images.shape[1]),
        "count": int(images.shape[0]),
        "class_names": list(class_names),
        "source": str(source),
    }
    (folder / META).write_text(json.dumps(meta, indent=2) + "\n")


def save_arrays(folder, images: np.ndarray, labels: np.ndarray, class_names, source: str) -> None:
    """Write in-memory uint8 (N, R, R, 3) images and (N,) labels as a prepared data set."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = create_images(folder, len(images), images.shape[1])
    out[:] = images
    out.flush()
    del out
    finish(folder, labels, class_names, source)


def is_prepared(folder) -> bool:
    """Whether `folder` looks like a prepared data set (has a meta.json)."""
    return (Path(folder) / META).is_file()


def _load(path: Path, **kwargs) -> np.ndarray:
    if not path.is_file():
        raise ValueError(f"{path} is missing: a prepared data set needs {IMAGES}, {LABELS} and "
                         f"{META}; {HOW_TO_MAKE}")
    try:
        return np.load(path, allow_pickle=False, **kwargs)
    except (OSError, ValueError, EOFError) as error:  # EOFError: an empty or cut-off file
        reason = str(error) or type(error).__name__
        raise ValueError(f"{path} is not a readable .npy file ({reason}); {HOW_TO_MAKE}") from None


def _read_meta(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(f"{path} is missing: a prepared data set needs {IMAGES}, {LABELS} and "
                         f"{META}; {HOW_TO_MAKE}")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); {HOW_TO_MAKE}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} does not describe a '{FORMAT}' data set; {HOW_TO_MAKE}")
    names = meta.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"{path}: 'class_names' must be a non-empty list of strings; {HOW_TO_MAKE}"
        )
    return meta


def open_arrays(folder, resolution: int | None = None) -> ArrayDataset:
    """Open and check a prepared data set folder; raises ValueError naming the bad file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; {HOW_TO_MAKE}")
    meta = _read_meta(folder / META)
    images = _load(folder / IMAGES, mmap_mode="r")
    labels = _load(folder / LABELS)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3 or (
        images.shape[1] != images.shape[2]
    ):
        raise ValueError(f"{folder / IMAGES} holds {images.dtype} {images.shape}; it must be uint8 "
                         f"(N, R, R, 3); {HOW_TO_MAKE}")
    if labels.dtype != np.int64 or labels.shape != images.shape[:1]:
        raise ValueError(f"{folder / LABELS} holds {labels.dtype} {labels.shape}; it must be int64 "
                         f"({images.shape[0]},), one label per image; {HOW_TO_MAKE}")
    if not len(labels):
        raise ValueError(f"{folder / IMAGES} holds no images; {HOW_TO_MAKE}")
    num_classes = len(meta["class_names"])
    if (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{folder / LABELS} has labels in [{labels.min()}, {labels.max()}] but "
                         f"{folder / META} names {num_classes} classes; {HOW_TO_MAKE}")
    if meta.get("resolution") != images.shape[1] or meta.get("count") != images.shape[0]:
        raise ValueError(f"{folder / META} says resolution {meta.get('resolution')} and count "
                         f"{meta.get('count')}, but {folder / IMAGES} is {images.shape}; "
                         f"{HOW_TO_MAKE}")
    if resolution is not None and images.shape[1] != resolution:
        raise ValueError(f"{folder} was prepared at {images.shape[1]}x{images.shape[1]}, not "
                         f"{resolution}x{resolution}: prepare it again with --resolution "
                         f"{resolution}, or ask for resolution {images.shape[1]}")
    return ArrayDataset(images, labels, meta["class_names"], path=folder)
