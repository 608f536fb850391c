r"""Files written whole or not at all: a temporary file, flushed and fsynced, renamed over the
final name, then the folder fsynced so the rename itself is durable. A crash or a full disk
mid-write leaves the previous file untouched, and a failed write is an `OSError` naming the file
(`torch.save`'s zip writer reports a full disk as a `RuntimeError`, which is translated)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from accelerated.cli import gist


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """`torch.save(state)` to `path`, whole or not at all (OSError naming the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, "wb", lambda fh: torch.save(state, fh))


def write_text_atomic(path: Path, text: str) -> None:
    """`text` to `path`, whole or not at all (OSError naming the file)."""
    _write_atomic(path, "w", lambda fh: fh.write(text))


def _write_atomic(path: Path, mode: str, write: Callable[[Any], object]) -> None:
    """`write(fh)` into a temporary file, flushed and fsynced, then renamed over `path` and the
    folder fsynced (so the rename itself is durable); on any error the temporary file goes."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        failed = _write_error(err, tmp)
        if failed is None:
            raise
        raise failed from None
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


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
