"""A benchmark's JSON record, rewritten as each row finishes, so a crash keeps what was measured.

`benchmarks/results/<benchmark>-<device>-<time>.json` holds the command, the environment
(`timing.environment`), the benchmark's settings and `rows`. The file appears with the first
row (a bad command line writes nothing) and is replaced by a rename each time, so a reader never
sees half a file.
"""

import json
import os
import re
import time
from pathlib import Path


class Results:
    """The record of one benchmark run; `add` a row as it finishes, `finish` with all rows."""

    def __init__(self, out: Path, benchmark: str, command: str, env: dict):
        slug = re.sub(r"[^a-z0-9]+", "-", str(env["device"]).lower()).strip("-") or "device"
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        self.path = Path(out) / f"{benchmark}-{slug}-{stamp}.json"
        self.record = {"benchmark": benchmark, "command": command, "utc": stamp, **env, "rows": []}

    def add(self, row: dict, extra: dict | None = None) -> None:
        """Append one finished row, update the record with `extra`, and write it."""
        self.record["rows"].append(row)
        self.record.update(extra or {})
        self.write()

    def finish(self, rows: list[dict], extra: dict) -> Path:
        """The final record: every row (in the benchmark's order) and its settings."""
        self.record.update(extra)
        self.record["rows"] = rows
        self.write()
        return self.path

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.record, indent=1) + "\n")
        os.replace(partial, self.path)
