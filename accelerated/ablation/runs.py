r"""The training runs of an ablation: one `accelerated.train` run per (configuration, seed).

Each run is an ordinary run folder, `OUT/runs/<configuration>-seed<k>`, made by the project's
training command with the configuration's settings as `--section.field` flags. A folder is
**done** when its newest checkpoint is of the last step, **partial** when it has an earlier
one (it continues with `--resume`), and **new** when it has none (a folder left by a run killed
before its first checkpoint is cleared). A folder made with other settings is refused, so a
rerun never mixes two different ablations (a setting newer than the folder's code, absent
from its saved config, is not compared).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from accelerated import checkpoint
from accelerated import config as C
from accelerated.ablation.variants import Variant
from accelerated.cli import UserError

IGNORED = ("run.out_dir", "run.progress")
"""Settings that may differ between a folder and a rerun (a moved folder, a terminal)."""


class AblationError(UserError, ValueError):
    """An ablation that cannot run as asked (exit status 2)."""


@dataclass(frozen=True)
class Schedule:
    """What every run of one ablation shares."""

    preset: str
    steps: int
    eval_every: int
    eval_samples: int

    def settings(self, seed: int) -> dict[str, str]:
        return {
            "run.seed": str(seed),
            "run.steps": str(self.steps),
            "run.eval_every": str(self.eval_every),
            "run.eval_samples": str(self.eval_samples),
            "run.checkpoint_every": str(self.eval_every),
            "run.sample_every": str(self.eval_every),  # a sample grid at every evaluation
            "run.progress": "false",  # the ablation shows one progress bar for all runs
        }


@dataclass(frozen=True)
class Run:
    variant: Variant
    seed: int
    folder: Path
    settings: dict[str, str]
    """Every `--section.field` flag of its `accelerated.train` command."""
    preset: str

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def steps(self) -> int:
        return int(self.settings["run.steps"])

    def config(self) -> C.TrainConfig:
        """The run's full training config, built the way `accelerated.train` builds it."""
        cfg = C.build(self.preset, None, self.settings)
        C.validate(cfg)
        return cfg

    def train_args(self) -> list[str]:
        """Arguments of `python -m accelerated.train` for this run: a new run, or `--resume`."""
        if self.state() == "partial":
            return ["--resume", str(self.folder)]
        flags = [item for key, value in self.settings.items() for item in (f"--{key}", value)]
        return ["--preset", self.preset, *flags]

    def state(self) -> str:
        """"done", "partial" or "new" (see the module docstring)."""
        found = checkpoint.list_checkpoints(self.folder)
        if not found or not (self.folder / "config.json").is_file():
            return "new"
        return "done" if found[-1] == checkpoint.path_for(self.folder, self.steps) else "partial"

    def check_folder(self) -> None:
        """Raise AblationError if the folder holds a run of other settings; clear a folder
        that holds no checkpoint (a run killed while starting) so that it can start anew."""
        if self.state() == "new":
            if self.folder.exists():
                shutil.rmtree(self.folder)
            return
        saved = json.loads((self.folder / "config.json").read_text())
        wanted = C.to_dict(self.config())
        for section, entries in wanted.items():
            for key, value in entries.items():
                path, old = f"{section}.{key}", saved.get(section, {}).get(key, value)
                if path not in IGNORED and old != value:
                    raise AblationError(
                        f"{self.folder} was trained with {path} = {old!r}, this ablation asks "
                        f"for {value!r}: choose another --out, or the settings of that run"
                    )


def plan(variants: list[Variant], seeds: int, schedule: Schedule, out: Path) -> list[Run]:
    """Every (configuration, seed) run, seed by seed: an ablation stopped early has every
    configuration with fewer seeds. Their configs are checked here, so a setting that cannot
    run (or data without the built-in quality measure) stops the ablation before any training."""
    runs = []
    for seed in range(seeds):
        for variant in variants:
            settings = {**variant.overrides, **schedule.settings(seed),
                        "run.out_dir": str(out / "runs"), "run.name": f"{variant.name}-seed{seed}"}
            run = Run(variant, seed, out / "runs" / settings["run.name"], settings,
                      schedule.preset)
            try:
                source = run.config().data.source
            except C.ConfigError as err:
                raise AblationError(f"configuration {variant.name}: {err}") from None
            if source != "builtin":
                raise AblationError(f"preset {schedule.preset} trains on {source!r}: the "
                                    f"ablation scores runs on the built-in data set only")
            runs.append(run)
    return runs
