"""Every evaluation of the R1 runs, and the tests of R1 against the default at step 2,500:
`python collect.py runs.json RUN_DIR[@section.field=value,...]...`.

A run's settings are those of its `config.toml` that differ from the builtin preset; an `@...`
suffix adds settings its config does not record (the first two runs wired the penalty through an
environment variable, see README.md)."""

import json
import sys
import tomllib
from pathlib import Path

from accelerated import config as C
from accelerated.ablation import stats

KEYS = ("score", "diversity", "agreement", "well_formed", "class_match", "symmetry", "fid")
# The default recipe at step 2,500, seeds 0, 1, 2 (../recipe/README.md, ../recipe-search/)
DEFAULT = {"score": [0.526, 0.385, 0.557], "diversity": [0.178, 0.147, 0.252]}

preset = C.to_dict(C.build())  # the builtin preset, as `python -m accelerated.train` runs it
runs = []
for arg in sys.argv[2:]:
    folder, _, extra = arg.partition("@")
    folder = Path(folder)
    cfg = tomllib.loads((folder / "config.toml").read_text())
    changes = {f"{section}.{k}": v for section in ("model", "optim")
               for k, v in cfg[section].items() if preset[section].get(k) != v}
    changes.update(item.split("=") for item in extra.split(",") if item)
    changes.update({f"run.{k}": cfg["run"][k] for k in ("seed",)})
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").open()]
    runs.append({"run": folder.name, "settings": changes,
                 "last_step": max(line["step"] for line in lines),
                 "evaluations": [{"step": line["step"], **{k: round(line[k], 4) for k in KEYS}}
                                 for line in lines if line["kind"] == "eval"]})

at_2500 = {}
for run in runs:
    if run["settings"].get("optim.r1_gamma") in (0.1, "0.1"):
        final = next(e for e in run["evaluations"] if e["step"] == 2500)
        for metric in DEFAULT:
            at_2500.setdefault(metric, []).append(final[metric])
tests = {metric: {"r1": values, "default": DEFAULT[metric],
                  **stats.compare(values, DEFAULT[metric])} for metric, values in at_2500.items()}
Path(sys.argv[1]).write_text(json.dumps({"runs": runs, "r1_vs_default_at_2500": tests},
                                        indent=1) + "\n")
for metric, t in tests.items():
    print(f"{metric}: R1 {t['r1']} vs default {t['default']}: difference {t['difference']:+.3f} "
          f"(95% CI {t['ci_low']:+.3f} to {t['ci_high']:+.3f}), one-sided p = {t['p']:.3f} "
          f"(smallest possible {t['smallest_p']:.3f})")
