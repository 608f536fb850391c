r"""Data: the built-in *Mirror twins* set, prepared array folders, and your own image folders.

`open_dataset(source, resolution, cache_dir)` returns a torch Dataset of
(float32 (3, R, R) in $[-1, 1]$, int64 label) with `num_classes` and `class_names`:

- `"builtin"`: the generated data set of `accelerated.data.builtin` (nothing is downloaded);
- a prepared folder (`images.npy`, `labels.npy`, `meta.json`, see `accelerated.data.arrays`);
- an ImageNet-layout folder (one subfolder of images per class): prepared once into
  `cache_dir/data/` (see `accelerated.data.prepare`) and re-used while the folder is unchanged.
"""

from __future__ import annotations

from pathlib import Path

from accelerated.data.arrays import ArrayDataset, is_prepared, open_arrays

__all__ = ["ArrayDataset", "open_dataset"]

DEFAULT_CACHE = "~/.cache/sagan"


def open_dataset(source: str, resolution: int, cache_dir=None, seed: int = 0) -> ArrayDataset:
    """The data set named by `source` at `resolution`; `seed` only affects "builtin"."""
    if source == "builtin":
        from accelerated.data import builtin

        images, labels = builtin.generate(builtin.DEFAULT_SIZE, resolution, seed)
        return ArrayDataset(images, labels, builtin.CLASS_NAMES)
    path = Path(source)
    if not path.is_dir():
        raise ValueError(
            f"data source {source!r} is neither 'builtin' nor a folder: pass 'builtin', a prepared "
            "folder, or a folder with one subfolder of images per class"
        )
    if is_prepared(path):
        return open_arrays(path, resolution)
    from accelerated.data.prepare import prepare_cached

    cache = Path(cache_dir or DEFAULT_CACHE).expanduser() / "data"
    return open_arrays(prepare_cached(path, resolution, cache), resolution)
