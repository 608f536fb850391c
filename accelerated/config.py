r"""The training configuration: one documented dataclass of defaults, presets, and overrides.

A run's settings come from four layers, each overriding the one before:

1. the defaults below (the optimiser defaults are the paper's / official code's);
2. a named **preset**, a small TOML file in `accelerated/presets/` (`--preset`, default `builtin`);
3. a TOML file of your own (`--config file.toml`), with the same sections;
4. single fields on the command line (`--optim.lr_d 2e-4`, `--run.name try1`).

```toml
[model]
g_ch = 32

[optim]
batch_size = 64
```

Sections: `model` (the architecture, `accelerated.models.ModelConfig`), `data`, `optim` and `run`.
The string below each field is its documentation: `python -m accelerated.train --help` prints it.
Unknown keys, values of the wrong type and impossible settings raise `ConfigError`, with one
message naming the field.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import math
import re
import textwrap
import tomllib
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from accelerated.cli import SEED_LIMIT
from accelerated.models.config import ModelConfig

DEFAULT_PRESET = "builtin"


class ConfigError(ValueError):
    """A configuration that cannot run: an unknown key, a wrong type or an impossible value."""


@dataclass
class DataConfig:
    source: str = "builtin"
    """Data set for `accelerated.data.open_dataset`: "builtin" or a path."""
    cache_dir: str = "~/.cache/sagan"
    """Where prepared data sets are cached."""
    workers: int = 0
    """Data-loader worker processes per rank (0: load in the training process)."""


@dataclass
class OptimConfig:
    batch_size: int = 256
    """Global batch (all ranks together); must divide by the number of ranks."""
    lr_g: float = 1e-4
    """Generator learning rate (TTUR: the slow time scale)."""
    lr_d: float = 4e-4
    """Discriminator learning rate (TTUR: the fast time scale)."""
    beta1: float = 0.0
    """Adam beta1 (0 in paper and official code)."""
    beta2: float = 0.999
    """Adam beta2 (official code 0.999; paper text 0.9)."""
    eps: float = 1e-8
    """Adam epsilon."""
    d_steps: int = 1
    """Discriminator steps per generator step."""
    ema: bool = False
    """Keep an exponential moving average of G, used for samples and evaluation."""
    ema_decay: float = 0.9999
    """EMA decay per step."""
    ema_start: int = 2000
    """Step at which averaging starts (before it the EMA copies G)."""


@dataclass
class RunConfig:
    name: str = ""
    """Run folder name under out_dir ("" = a timestamp)."""
    out_dir: str = "runs"
    """Parent folder of the run folders."""
    steps: int = 1_000_000
    """Training iterations (one iteration = d_steps D steps + one G step)."""
    seed: int = 0
    """Seeds initialisation, data order and noise."""
    device: str = "auto"
    """Device: "auto" (CUDA when present), "cpu" or "cuda"."""
    bf16: bool = True
    """bfloat16 autocast on CUDA (SN, losses, BN statistics stay float32)."""
    channels_last: bool = True
    """Channels-last memory format on CUDA."""
    compile: bool = False
    """Wrap G and D in torch.compile (CUDA)."""
    log_every: int = 50
    """Steps between loss lines in metrics.jsonl / TensorBoard."""
    sample_every: int = 1000
    """Steps between sample grids and attention figures."""
    eval_every: int = 5000
    """Steps between evaluations (FID, KID, the built-in data set's quality) and best.pt updates."""
    eval_samples: int = 1000
    """Samples generated for an evaluation."""
    eval_metrics: Literal["offline", "inception", "none"] = "offline"
    """Feature metrics of an evaluation: "offline" (FID and KID in fixed random features),
    "inception" (the paper's FID and KID in the standard Inception, and IS where torch-fidelity
    runs) or "none" (the built-in quality only)."""
    inception_weights: str | None = None
    """Local copy of torch-fidelity's Inception weights, for the Inception Score with
    eval_metrics "inception" (none: torch-fidelity downloads them once, where it runs)."""
    best_metric: Literal["fid", "kid", "score", "none"] = "fid"
    """Evaluation number that picks best.pt: "fid" or "kid" (lower is better), "score" (the
    built-in data set's quality, higher is better) or "none" (no best.pt)."""
    checkpoint_every: int = 5000
    """Steps between checkpoints."""
    keep_checkpoints: int = 3
    """Newest checkpoints kept."""
    grid_columns: int = 8
    """Samples per class in the sample grid."""
    max_bad_steps: int = 10
    """Non-finite steps in a row before rolling back to the newest checkpoint from before them."""
    max_rollbacks: int = 3
    """Rollbacks before giving up with an error."""
    progress: bool = True
    """Show a tqdm progress bar."""


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    """The architecture."""
    data: DataConfig = field(default_factory=DataConfig)
    """The data set."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Losses, optimisers, EMA."""
    run: RunConfig = field(default_factory=RunConfig)
    """Output, schedule, device, fault tolerance."""


# ---------------------------------------------------------------------------------------------
# Fields as data: names, types, defaults and docs read from the dataclasses above.


@dataclass(frozen=True)
class FieldInfo:
    path: str  # "optim.lr_d"
    type: Any  # resolved annotation
    default: Any
    doc: str


@cache
def _attribute_docs(cls: type) -> dict[str, str]:
    """Field docs of a dataclass: the string right below each field (attribute docstring)."""
    try:
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    except (OSError, TypeError):
        return {}
    docs = {}
    for stmt, after in itertools.pairwise(body):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[stmt.target.id] = " ".join(after.value.value.split())
    return docs


def fields_of(cls: type = TrainConfig, prefix: str = "") -> list[FieldInfo]:
    """Every leaf field of a (nested) config dataclass, with its dotted path, type, default, doc."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            out += fields_of(kind, f"{prefix}{f.name}.")
            continue
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        out.append(FieldInfo(prefix + f.name, kind, default, _attribute_docs(cls).get(f.name, "")))
    return out


def type_name(kind: Any) -> str:
    """A readable name of a field's type: "int", "tuple[int, ...] | None"."""
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


def coerce(value: Any, kind: Any, path: str) -> Any:
    """`value` (from TOML or, as a string, from the command line) as type `kind`, or ConfigError."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            if type(None) in args:
                return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, path)
            except ConfigError:
                pass
    elif origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{path}: must be one of {', '.join(map(repr, args))}, got {value!r}")
    elif origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v]
        if isinstance(value, list | tuple):
            items = args[:1] if (origin is list or args[1:] == (Ellipsis,)) else args
            if origin is tuple and args[1:] != (Ellipsis,) and len(value) != len(args):
                raise ConfigError(f"{path}: needs {len(args)} values, got {len(value)}")
            item_types = items * len(value) if len(items) == 1 else items
            return origin(coerce(v, t, f"{path}[{i}]") for i, (v, t) in
                          enumerate(zip(value, item_types, strict=True)))
    elif kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0",
                                                        "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d[\d_]*", value.strip()):
            return int(value)
    elif kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str):
            return value
    elif kind is Any:
        return value
    raise ConfigError(f"{path}: expected {type_name(kind)}, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Building a config: defaults <- preset <- file <- command line.


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as nested plain dicts (tuples become lists): for JSON, TOML or torch.save."""

    def plain(v):
        return [plain(x) for x in v] if isinstance(v, list | tuple) else v

    return {k: {n: plain(v) for n, v in sec.items()} for k, sec in dataclasses.asdict(cfg).items()}


def merge(base: TrainConfig, overrides: dict[str, Any], origin: str) -> TrainConfig:
    """`base` with the nested `overrides` applied; unknown sections or keys raise ConfigError."""
    known = {f.path: f for f in fields_of()}
    sections = {f.name for f in dataclasses.fields(TrainConfig)}
    values = to_dict(base)
    for section, entries in overrides.items():
        if section not in sections or not isinstance(entries, dict):
            raise ConfigError(f"{origin}: unknown section [{section}]; sections are "
                              f"{', '.join(sorted(sections))}")
        for key, value in entries.items():
            path = f"{section}.{key}"
            if path not in known:
                raise ConfigError(f"{origin}: unknown key {path!r}" + _suggest(path, known))
            values[section][key] = coerce(value, known[path].type, f"{origin}: {path}")
    return from_dict(values)


def _suggest(path: str, known: dict[str, FieldInfo]) -> str:
    import difflib

    close = difflib.get_close_matches(path, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else " (see --help for the list)"


def from_dict(values: dict[str, dict[str, Any]]) -> TrainConfig:
    """A TrainConfig from nested dicts of already-typed values (e.g. a saved config.json)."""
    hints = typing.get_type_hints(TrainConfig)
    sections = {}
    for name, kind in hints.items():
        entries = {f.name: values.get(name, {}).get(f.name) for f in dataclasses.fields(kind)
                   if f.name in values.get(name, {})}
        sub_hints = typing.get_type_hints(kind)
        for key, value in entries.items():
            entries[key] = coerce(value, sub_hints[key], f"{name}.{key}")
        try:
            sections[name] = kind(**entries)
        except (ValueError, TypeError) as err:  # a dataclass's own __post_init__ checks
            raise ConfigError(f"[{name}]: {err}") from None
    return TrainConfig(**sections)


def _presets_folder():
    return resources.files("accelerated").joinpath("presets")


def preset_names() -> list[str]:
    """Names of the presets shipped in accelerated/presets/ (file names without .toml)."""
    return sorted(p.name.removesuffix(".toml") for p in _presets_folder().iterdir()
                  if p.name.endswith(".toml"))


CONFIG_LIMIT = 1 << 20  # bytes: a config file is a few hundred; /dev/zero would never end


def load_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            text = fh.read(CONFIG_LIMIT + 1)
        if len(text) > CONFIG_LIMIT:
            raise ConfigError(f"config file {path} is larger than {CONFIG_LIMIT} bytes: give a "
                              f"TOML file of settings")
        return tomllib.loads(text.decode())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    except OSError as err:  # a folder, no permission
        raise ConfigError(f"config file {path} cannot be read: {err.strerror or err}") from None


def preset(name: str) -> dict[str, Any]:
    """The overrides of a named preset (a TOML file in accelerated/presets/)."""
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; presets are {', '.join(preset_names())}")
    return tomllib.loads(_presets_folder().joinpath(f"{name}.toml").read_text())


def build(preset_name: str | None = DEFAULT_PRESET, config_file: str | None = None,
          overrides: dict[str, str] | None = None, base: TrainConfig | None = None) -> TrainConfig:
    """Defaults (or `base`) <- preset <- config file <- `overrides` {"optim.lr_d": "2e-4"}."""
    cfg = base or TrainConfig()
    if preset_name:
        cfg = merge(cfg, preset(preset_name), f"preset {preset_name}")
    if config_file:
        cfg = merge(cfg, load_toml(config_file), str(config_file))
    nested: dict[str, dict[str, Any]] = {}
    for path, value in (overrides or {}).items():
        section, _, key = path.partition(".")
        nested.setdefault(section, {})[key] = value
    return merge(cfg, nested, "command line")


def validate(cfg: TrainConfig, world_size: int = 1) -> None:
    """Raise ConfigError for settings that cannot run (the dataclasses check only types)."""
    o, r = cfg.optim, cfg.run
    checks = [
        (o.batch_size >= 1, "optim.batch_size must be at least 1"),
        (o.batch_size % world_size == 0,
         f"optim.batch_size {o.batch_size} does not divide by the {world_size} ranks: "
         f"use a multiple of {world_size}"),
        (0 < o.lr_g < math.inf and 0 < o.lr_d < math.inf,
         "optim.lr_g and optim.lr_d must be positive and finite"),
        (0 <= o.beta1 < 1 and 0 <= o.beta2 < 1, "optim.beta1 and optim.beta2 must lie in [0, 1)"),
        (0 < o.eps < math.inf, "optim.eps must be positive and finite"),
        (o.d_steps >= 1, "optim.d_steps must be at least 1"),
        (0 <= o.ema_decay < 1, "optim.ema_decay must lie in [0, 1)"),
        (o.ema_start >= 0, "optim.ema_start must be at least 0"),
        (r.steps >= 1, "run.steps must be at least 1"),
        (0 <= r.seed < SEED_LIMIT, "run.seed must lie in [0, 2**63)"),
        (r.device in ("auto", "cpu", "cuda"), "run.device must be 'auto', 'cpu' or 'cuda'"),
        (min(r.log_every, r.sample_every, r.eval_every, r.checkpoint_every) >= 1,
         "run.log_every, sample_every, eval_every and checkpoint_every must be at least 1"),
        (r.eval_samples >= 1 and r.grid_columns >= 1,
         "run.eval_samples and run.grid_columns must be at least 1"),
        (r.eval_metrics == "none" or r.eval_samples >= 10,  # the Inception Score's 10 splits
         "run.eval_samples must be at least 10 for FID and KID: raise it, or set "
         "run.eval_metrics = 'none'"),
        (r.inception_weights is None or r.eval_metrics == "inception",
         "run.inception_weights only applies with run.eval_metrics = 'inception'"),
        (r.best_metric not in ("fid", "kid") or r.eval_metrics != "none",
         f"run.best_metric = {r.best_metric!r} needs run.eval_metrics 'offline' or 'inception' "
         f"(not 'none')"),
        (r.best_metric != "score" or (cfg.data.source == "builtin" and cfg.model.conditional),
         "run.best_metric = 'score' needs the built-in data set and a class-conditional model: "
         "use 'fid' or 'kid' otherwise"),
        (r.keep_checkpoints >= 1, "run.keep_checkpoints must be at least 1"),
        (r.max_bad_steps >= 1 and r.max_rollbacks >= 0,
         "run.max_bad_steps must be at least 1 and run.max_rollbacks at least 0"),
        (cfg.data.workers >= 0, "data.workers must be at least 0"),
        ("/" not in r.name and r.name not in (".", ".."), "run.name must be a plain folder name"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def to_toml(cfg: TrainConfig) -> str:
    """The config as TOML text (every field), readable back with `--config`."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(v)

    blocks = []
    for section, entries in to_dict(cfg).items():
        lines = [f"[{section}]"] + [f"{k} = {value(v)}" for k, v in entries.items()
                                    if v is not None]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
