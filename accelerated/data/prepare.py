r"""Turn a folder of images into the prepared array format, with a report of what was skipped.

    python -m accelerated.data.prepare SRC_FOLDER OUT --resolution 128 [--workers N]

`SRC_FOLDER` has one subfolder of images per class (see `accelerated.data.folder`). Every image is
centre-cropped, resized and written to `OUT/images.npy`; files that cannot be used (corrupt,
truncated, not images, under 8 px) are skipped, and class folders left without images are dropped.
`OUT/report.json` lists every skipped file with the reason and every conversion (mode changes,
alpha composited on white, upscaling); one summary line is printed.

The work happens in a hidden folder beside `OUT` (`.OUT.partial-PID`), renamed to `OUT` only when
complete, so an interrupted run leaves no half-written data set; the work folder is removed on
errors and Ctrl-C, and the next run removes any left by a killed process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from accelerated.cli import Parser, run
from accelerated.data import arrays
from accelerated.data.folder import UnusableImage, load_image, scan

REPORT = "report.json"
MIN_RESOLUTION = 8


def _convert(job: tuple[int, str, int]) -> tuple[int, np.ndarray | None, list[str]]:
    """Worker: (index, pixels or None, notes or [reason])."""
    index, path, resolution = job
    try:
        pixels, notes = load_image(path, resolution)
    except UnusableImage as error:
        return index, None, [str(error)]
    return index, pixels, notes


def _convert_all(files, resolution: int, workers: int, progress: bool):
    """Yield _convert's results in file order, in `workers` processes (0 or 1: in this one)."""
    jobs = [(i, str(path), resolution) for i, (path, _) in enumerate(files)]
    bar = tqdm(total=len(jobs), unit="img", desc="prepare", disable=not progress)
    pool = Pool(workers) if workers > 1 else None
    try:
        results = pool.imap(_convert, jobs, chunksize=16) if pool else map(_convert, jobs)
        for result in results:
            bar.update()
            yield result
    finally:
        bar.close()
        if pool:
            pool.terminate()


def _write(src: Path, tmp: Path, resolution: int, workers: int, progress: bool) -> dict:
    names, files, skipped = scan(src)
    if not files:
        raise ValueError(f"no image files found in {src}: it needs one subfolder of images "
                         f"(.jpg, .png, ...) per class")
    staging = arrays.create_images(tmp, len(files), resolution)  # rows packed in file order
    labels, notes = [], []
    for index, pixels, messages in _convert_all(files, resolution, workers, progress):
        path, label = files[index]
        if pixels is None:
            skipped.append((path, messages[0]))
            continue
        staging[len(labels)] = pixels
        labels.append(label)
        notes += [{"path": str(path), "note": note} for note in messages]
    staging.flush()
    del staging
    if not labels:
        path, reason = skipped[-1]
        raise ValueError(f"nothing usable in {src}: all {len(files)} image files were skipped "
                         f"(e.g. {path}: {reason})")
    # Keep only classes with images; number them densely in name order.
    used = sorted(set(labels))
    dropped = [names[k] for k in range(len(names)) if k not in used]
    labels = np.searchsorted(used, labels).astype(np.int64)
    names = [names[k] for k in used]
    arrays.shrink_images(tmp, len(labels))  # drop the rows of skipped files
    arrays.finish(tmp, labels, names, source=str(src.resolve()))
    report = {
        "source": str(src.resolve()),
        "resolution": resolution,
        "converted": len(labels),
        "classes": {name: int((labels == k).sum()) for k, name in enumerate(names)},
        "dropped_classes": dropped,
        "skipped": [{"path": str(path), "reason": reason} for path, reason in skipped],
        "notes": notes,
    }
    (tmp / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return report


class OutputExists(ValueError):
    """The output folder exists (or another process finished preparing it first)."""


def _running(pid: int) -> bool:
    if os.name == "nt":  # there os.kill would end the process: keep its folder
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _clear_stale(out: Path) -> None:
    """Remove work folders of earlier runs for `out` whose process has died (killed, crashed)."""
    for stale in out.parent.glob(f".{out.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def prepare(src, out, resolution: int, workers: int = 0, progress: bool = True) -> dict:
    """Prepare `src` (a class-per-subfolder image folder) into the array folder `out`.

    Returns the report (also written to `out/report.json`). Raises ValueError when `src` is not a
    folder or no usable image remains, and OutputExists (a ValueError) when `out` exists. Several
    processes may prepare the same `out` at once: each works in its own folder, the first to
    finish renames it to `out`, the others get OutputExists."""
    src, out = Path(src), Path(out)
    if resolution < MIN_RESOLUTION:
        raise ValueError(f"resolution {resolution} is too small: use at least {MIN_RESOLUTION}")
    exists = f"{out} already exists: remove it or choose another output folder"
    if out.exists():
        raise OutputExists(exists)
    out.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(out)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        report = _write(src, tmp, resolution, workers, progress)
        try:
            os.replace(tmp, out)  # atomic; fails if another process created `out` meanwhile
        except OSError:
            if out.exists():
                raise OutputExists(exists) from None
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def summary(report: dict, out) -> str:
    """One line: what was prepared, and how much was skipped."""
    def count(n: int, noun: str, plural: str) -> str:
        return f"{n} {noun if n == 1 else plural}"

    line = (f"prepared {count(report['converted'], 'image', 'images')} in "
            f"{count(len(report['classes']), 'class', 'classes')} at "
            f"{report['resolution']}x{report['resolution']} into {out}")
    if report["skipped"] or report["dropped_classes"]:
        line += (f"; skipped {count(len(report['skipped']), 'file', 'files')} and dropped "
                 f"{count(len(report['dropped_classes']), 'class', 'classes')} "
                 f"(see {Path(out) / REPORT})")
    return line


def cache_key(src: Path, resolution: int) -> str:
    """Hash of the folder's absolute path, the resolution, and every entry's name, size, mtime."""
    digest = hashlib.sha256(f"{src.resolve()}\n{resolution}\n".encode())
    for path in sorted(src.rglob("*")):
        try:
            stat = path.stat()
        except OSError:  # a dangling or looping link (prepare skips it): the link's own data
            stat = path.lstat()
        digest.update(f"{path.relative_to(src)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def default_workers() -> int:
    """Decoding processes: the CPU count, at most 8."""
    return min(8, os.cpu_count() or 1)


def prepare_cached(src, resolution: int, cache_dir) -> Path:
    """The prepared copy of `src` in `cache_dir`, made now unless an up-to-date one exists."""
    src = Path(src)
    out = Path(cache_dir) / f"{src.resolve().name}-{resolution}-{cache_key(src, resolution)}"
    if not arrays.is_prepared(out):
        try:
            report = prepare(src, out, resolution, workers=default_workers())
            print(summary(report, out), file=sys.stderr)
        except OutputExists:
            if not arrays.is_prepared(out):
                raise
    return out


def main(argv=None) -> int:
    parser = Parser(
        prog="python -m accelerated.data.prepare",
        description="Turn a folder with one subfolder of images per class into a prepared "
        "data set (images.npy, labels.npy, meta.json, report.json).",
    )
    parser.add_argument("src", help="folder with one subfolder of images per class")
    parser.add_argument("out", help="output folder (must not exist)")
    parser.add_argument("--resolution", type=int, default=128, help="image side (default 128)")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="decoding processes (default: CPU count, at most 8; 0 = none)")
    args = parser.parse_args(argv)

    def body() -> None:
        print(summary(prepare(args.src, args.out, args.resolution, args.workers), args.out))

    # bad folders, like an output that cannot be written, fail the job: status 1
    return run(parser.prog, body, interrupted=f"interrupted: nothing was written to {args.out}",
               exit_codes={ValueError: 1})


if __name__ == "__main__":
    sys.exit(main())
