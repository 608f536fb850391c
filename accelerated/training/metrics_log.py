r"""Where a run reports: `metrics.jsonl` (one JSON object a line), TensorBoard, and the terminal.

Each record is `{"step": ..., "kind": "train" | "eval" | "event", "time": seconds since start,
...values}`, so `pandas.read_json("metrics.jsonl", lines=True)` reads a run. TensorBoard scalars
go to `<run>/tensorboard` as `kind/name`; if TensorBoard does not import, a warning is printed
once and the run goes on with the JSON file alone. Messages go through `tqdm.write`, so they do
not tear the progress bar.

A crash or a full disk can leave the last line of `metrics.jsonl` torn (no newline): readers
leave it out, and a resumed run cuts it off, with a warning, before it appends.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from accelerated.cli import say


def read_records(run_dir: Path) -> list[dict]:
    """The records of a run's `metrics.jsonl`, oldest first ([] if it has none yet); a last line
    still being written is left out."""
    path = Path(run_dir) / "metrics.jsonl"
    text = path.read_text() if path.is_file() else ""
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]


def _cut_torn_line(path: Path) -> None:
    """Cut a torn last line (one without its newline) off `path`, with a warning."""
    if not path.is_file():
        return
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0 or (fh.seek(size - 1), fh.read(1))[1] == b"\n":
            return
        fh.seek(0)
        keep = fh.read().rfind(b"\n") + 1
        fh.truncate(keep)
    say(f"warning: {path} ended in a torn record ({size - keep} bytes, left by a crash or a full "
        f"disk); cut it off before appending")


class MetricsLog:
    """Append-only metrics of one run (rank 0 only: other ranks pass `enabled=False`)."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.start = time.monotonic()
        self.path = Path(run_dir) / "metrics.jsonl"
        self.file = None
        if enabled:
            _cut_torn_line(self.path)
            self.file = open(self.path, "a")
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                say(f"warning: TensorBoard is not available ({err}); logging to metrics.jsonl only")
            else:
                self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def write(self, step: int, kind: str, values: dict[str, float | int | str]) -> None:
        if not self.enabled:
            return
        record = {"step": step, "kind": kind, "time": round(time.monotonic() - self.start, 3)}
        record.update(values)
        try:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        except OSError as err:  # e.g. a full disk: the line may be torn, resume cuts it off
            raise OSError(err.errno, err.strerror or str(err), str(self.path)) from None
        if self.writer is not None:
            for name, value in values.items():
                if isinstance(value, int | float):
                    self.writer.add_scalar(f"{kind}/{name}", value, step)

    def close(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):  # a failed write was reported when it happened
                self.file.close()
            self.file = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
