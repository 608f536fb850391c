r"""Benchmark of data loading against the training step's appetite.

`accelerated.bench.loader.measure` times how many images per second reach training from a prepared
array file (written on the fly: random pixels at the preset's resolution), raw from the memory map
and through the `DataLoader` as training uses it. A training iteration eats `batch * d_steps` real
images; a `bench step` result of the same preset (the newest in the results folder, or one named
with `--step-json`) says how many iterations per second each row runs, so its appetite is
`it/s * batch * d_steps` images per second. The loader keeps up when its rate, with the preset's
`data.workers`, is above that.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from accelerated.bench.loader import measure, random_set
from accelerated.bench.trainer import config


def newest_step_result(folder: Path, preset: str) -> Path | None:
    """The newest `step-*.json` in `folder` measured on `preset`, or None."""
    found = []
    for path in Path(folder).glob("step-*.json"):
        record = json.loads(path.read_text())
        if record.get("preset") == preset:
            found.append((record.get("utc", ""), path))
    return max(found)[1] if found else None


def appetite(step_record: dict, d_steps: int) -> list[dict]:
    """Real images per second that each measured row of a `bench step` record consumes."""
    return [{"row": r["row"], "it_s": r["it_s"], "images_s": r["it_s"] * r["batch"] * d_steps}
            for r in step_record["rows"] if r["status"] == "ok"]


def benchmark(preset: str, count: int, workers, repeats: int) -> tuple[list[dict], dict]:
    """`(rows, settings)`: images per second of every way of reading a random prepared set at the
    preset's resolution and batch size."""
    cfg = config(preset)
    R, B = cfg.model.resolution, cfg.optim.batch_size
    if count < 3 * B:
        raise ValueError(f"--count {count}: the data benchmark needs at least 3 batches of {B}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = random_set(Path(tmp) / "random", count, R)
        rates = measure(folder, B, workers, repeats)
    rows = [{"way": way, "images_s": rate} for way, rate in rates.items()]
    settings = {"preset": preset, "resolution": R, "batch": B, "count": count,
                "training_workers": cfg.data.workers, "d_steps": cfg.optim.d_steps}
    return rows, settings


def compare(rows: list[dict], settings: dict, step_record: dict | None) -> list[dict]:
    """The appetite of each step row and the loader's headroom over it (loader rate / appetite),
    with the loader as training runs it (the preset's `data.workers`)."""
    if step_record is None:
        return []
    way = f"DataLoader, workers={settings['training_workers']}"
    rates = {r["way"]: r["images_s"] for r in rows}
    loader = rates.get(way)
    return [{**a, "device": step_record.get("device"), "loader": way,
             "headroom": None if loader is None else loader / a["images_s"]}
            for a in appetite(step_record, settings["d_steps"])]


def format_table(rows: list[dict], settings: dict, comparison: list[dict]) -> str:
    lines = [f"{settings['count']} random images at {settings['resolution']}x"
             f"{settings['resolution']}, batch {settings['batch']} (preset {settings['preset']}, "
             f"training uses {settings['training_workers']} loader workers)"]
    lines += [f"  {r['way']:<34} {r['images_s']:>10,.0f} images/s" for r in rows]
    if comparison:
        lines.append(f"training step's appetite ({comparison[0]['device']}), real images/s:")
        for c in comparison:
            room = "loader not measured" if c["headroom"] is None else (
                f"loader x{c['headroom']:.2f}")
            lines.append(f"  {c['row']:<34} {c['images_s']:>10,.0f} images/s  {room}")
    return "\n".join(lines)
