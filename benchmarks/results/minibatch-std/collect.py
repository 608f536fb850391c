"""Every evaluation of the runs given, with the settings that differ from the builtin preset:
`python collect.py OUT.json RUN_DIR...` (quality of 1,000 fresh samples per evaluation)."""

import json
import sys
import tomllib
from pathlib import Path

from accelerated import config as C

KEYS = ("score", "diversity", "agreement", "well_formed", "class_match", "symmetry")
preset = C.to_dict(C.build())  # the builtin preset, as `python -m accelerated.train` runs it
runs = []
for folder in map(Path, sys.argv[2:]):
    cfg = tomllib.loads((folder / "config.toml").read_text())
    changes = {f"{section}.{k}": v for section in ("model", "optim")
               for k, v in cfg[section].items() if preset[section].get(k) != v}
    changes.update({f"run.{k}": cfg["run"][k] for k in ("steps", "seed")})
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").open()]
    runs.append({"run": folder.name, "settings": changes,
                 "last_step": max(line["step"] for line in lines),
                 "evaluations": [{"step": line["step"], **{k: round(line[k], 4) for k in KEYS}}
                                 for line in lines if line["kind"] == "eval"]})
Path(sys.argv[1]).write_text(json.dumps(runs, indent=1) + "\n")
print(f"{sys.argv[1]}: {len(runs)} runs")
