r"""Files written whole or not at all: a temporary file, flushed and fsynced, renamed over the
final name, then the folder fsynced so the rename itself is durable. A crash or a full disk
mid-write leaves the previous file untouched, and a failed write is an `OSError` naming the file
(`torch.save`'s zip writer reports a full disk as a `RuntimeError`, which is translated)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import torch

from accelerated.cli import gist


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """`torch.save` to a temporary file, fsync, rename over `path`; on error nothing changes.
    A failed write raises OSError naming the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        failed = _write_error(err, tmp)
        if failed is None:
            raise
        raise failed from None
    _fsync_folder(path.parent)  # make the rename itself durable


def _fsync_folder(folder: Path) -> None:
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _write_error(err: BaseException, path: Path) -> OSError | None:
    """The OSError, naming `path`, that a failed write of `path` amounts to (None: not one).
    torch.save's zip writer turns the OSError of a full disk into a RuntimeError
    ("unexpected pos"), with the OSError as its context."""
    cause = err
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__context__
    if isinstance(cause, OSError):
        if cause.filename is not None:
            return cause if cause is not err else None
        return OSError(cause.errno, cause.strerror or str(cause), str(path))
    if isinstance(err, RuntimeError) and "unexpected pos" in str(err):
        return OSError(errno.EIO, f"the write failed ({gist(err)})", str(path))
    return None


def write_text_atomic(path: Path, text: str) -> None:
    """Text to a temporary file, fsynced, then renamed over `path`: never a half-written file.
    A failed write raises OSError naming the file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        failed = _write_error(err, tmp)
        if failed is None:
            raise
        raise failed from None
    _fsync_folder(path.parent)
