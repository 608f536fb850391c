r"""How fast the prepared data set feeds training: images per second, loader against raw reads.

    python -m accelerated.bench.loader [--data FOLDER] [--count 4096] [--resolution 128]

Without `--data` it writes a temporary prepared set of random pixels. It then times, for shuffled
batches of 256 (the SAGAN batch size):

- `raw memmap, slices`: contiguous batches straight from the memory map, converted to float in
  one operation: the most a loader could do on this machine;
- `raw memmap, shuffled`: the same with random indices (a gather per batch);
- `DataLoader, workers=W`: the `ArrayDataset` item by item through `torch.utils.data.DataLoader`,
  as training uses it (timed from the first batch, so worker start-up is left out);
- `DataLoader, workers=0, 1 thread`: the same in this process with torch on one thread, as
  each worker process runs: on a busy machine, collating a batch on several threads is slower.

The files are read through the page cache (just written, so warm): the figures are the CPU cost of
decoding and collating, not disk speed. Each is the best of `--repeats` passes over the data.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from accelerated.data.arrays import open_arrays, save_arrays, to_model_range
from accelerated.host import cpu_model, load_average


def machine() -> str:
    """CPU model, cores and current load, torch version and threads, in one line."""
    return (f"{cpu_model()}, {os.cpu_count()} cores (load average {load_average():.1f}), torch "
            f"{torch.__version__} ({torch.get_num_threads()} threads), "
            f"Python {platform.python_version()}")


def _to_float(batch: np.ndarray) -> torch.Tensor:
    """(B, R, R, 3) uint8 -> (B, 3, R, R) float32 in [-1, 1], converted as ArrayDataset does."""
    return torch.from_numpy(to_model_range(batch))


def raw_rate(images: np.ndarray, batch_size: int, shuffled: bool, seed: int = 0) -> float:
    """Images per second reading and converting every image once in batches, with no Dataset."""
    order = np.random.default_rng(seed).permutation(len(images))
    start = time.perf_counter()
    for i in range(0, len(images), batch_size):
        rows = np.sort(order[i : i + batch_size]) if shuffled else slice(i, i + batch_size)
        _to_float(images[rows])
    return len(images) / (time.perf_counter() - start)


def loader_rate(dataset, batch_size: int, workers: int) -> float:
    """Images per second of one shuffled pass through a DataLoader, from its first batch on."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        drop_last=True)
    batches = iter(loader)
    next(batches)
    start = time.perf_counter()
    for _ in batches:
        pass
    return (len(loader) - 1) * batch_size / (time.perf_counter() - start)


def measure(folder, batch_size: int = 256, workers=(0, 2), repeats: int = 2) -> dict[str, float]:
    """Images per second of each way of reading the prepared set in `folder` (best of repeats)."""
    dataset = open_arrays(folder)
    if len(dataset) < 3 * batch_size:
        raise ValueError(f"{folder} has {len(dataset)} images: the benchmark needs at least "
                         f"{3 * batch_size} (3 batches)")
    ways = {
        "raw memmap, slices": lambda: raw_rate(dataset.images, batch_size, shuffled=False),
        "raw memmap, shuffled": lambda: raw_rate(dataset.images, batch_size, shuffled=True),
    }
    for w in workers:
        ways[f"DataLoader, workers={w}"] = lambda w=w: loader_rate(dataset, batch_size, w)
    if 0 in workers:
        ways["DataLoader, workers=0, 1 thread"] = lambda: one_thread(loader_rate, dataset,
                                                                     batch_size, 0)
    return {name: max(way() for _ in range(repeats)) for name, way in ways.items()}


def one_thread(function, *args):
    """`function(*args)` with torch limited to one intra-op thread (as in a loader worker)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return function(*args)
    finally:
        torch.set_num_threads(threads)


def random_set(folder: Path, count: int, resolution: int) -> Path:
    """Write a prepared set of `count` random-pixel images (one class) to `folder`."""
    rng = np.random.default_rng(0)
    shape = (count, resolution, resolution, 3)
    save_arrays(folder, rng.integers(0, 256, shape, dtype=np.uint8), np.zeros(count, np.int64),
                ["random"], source="bench")
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m accelerated.bench.loader",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="a prepared data set folder (default: random pixels)")
    parser.add_argument("--count", type=int, default=4096, help="images in the random set")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data
        if folder is None:
            folder = random_set(Path(tmp) / "random", args.count, args.resolution)
        try:
            rates = measure(folder, args.batch_size, args.workers, args.repeats)
        except ValueError as error:
            print(f"error: {error}")
            return 1
        data = open_arrays(folder)
        print(f"{len(data)} images at {data.resolution}x{data.resolution}, batch {args.batch_size}")
        for name, rate in rates.items():
            print(f"  {name:<32} {rate:>10,.0f} images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
