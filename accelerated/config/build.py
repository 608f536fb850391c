r"""A run's config from its layers: defaults <- preset <- TOML file <- `--section.field` flags.

Values from files are TOML values; a flag's text is read as a TOML literal (`2e-4`, `true`,
`[8, 16]`), with three conveniences: text that is no TOML literal is a string (`--run.name
try1`), `none` is None, and a list may be written with bare commas (`8,16`). Each value is then
checked against its field's type (`check`), and sections are rebuilt with `dataclasses.replace`,
so a section's own checks (`ModelConfig.__post_init__`) run on every change. Unknown sections
and keys, values of the wrong type and impossible settings raise `ConfigError`, one message
naming the field.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import tomllib
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from accelerated.cli import UserError
from accelerated.config.schema import TrainConfig
from accelerated.files import write_text_atomic

DEFAULT_PRESET = "builtin"
CONFIG_LIMIT = 1 << 20  # bytes: a config file is a few hundred; /dev/zero would never end


class ConfigError(UserError, ValueError):
    """A configuration that cannot run: an unknown key, a wrong type or an impossible value."""


@dataclass(frozen=True)
class FieldInfo:
    path: str  # "optim.lr_d"
    type: Any  # resolved annotation
    default: Any
    doc: str


def fields_of(cls: type = TrainConfig, prefix: str = "") -> list[FieldInfo]:
    """Every leaf field of a (nested) config dataclass, with its dotted path, type, default, doc."""
    hints, out = typing.get_type_hints(cls), []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += fields_of(hints[f.name], f"{prefix}{f.name}.")
        else:
            out.append(FieldInfo(prefix + f.name, hints[f.name], f.default, f.metadata["doc"]))
    return out


def type_name(kind: Any) -> str:
    """A readable name of a field's type: "int", "tuple[int, ...] | None"."""
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


def check(value: Any, kind: Any, path: str) -> Any:
    """`value` as a value of type `kind` (ints widen to float, lists become tuples), or
    ConfigError naming `path`."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            with contextlib.suppress(ConfigError):
                return check(value, arg, path)
    elif origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{path}: must be one of {', '.join(map(repr, args))}, got {value!r}")
    elif origin is tuple and isinstance(value, list | tuple):
        return tuple(check(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
    elif kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif kind in (int, bool, str) and type(value) is kind:
        return value
    raise ConfigError(f"{path}: expected {type_name(kind)}, got {value!r}")


def parse_flag(text: str, kind: Any, path: str) -> Any:
    """A command-line value for a field of type `kind` (see the module's doc)."""
    args = typing.get_args(kind) or (kind,)
    if text.strip().lower() == "none" and type(None) in args:
        return None
    if str in args or typing.get_origin(kind) is typing.Literal:
        return check(text, kind, path)  # text fields take the text as it is
    if any(typing.get_origin(a) is tuple for a in args) and not text.lstrip().startswith("["):
        text = f"[{text}]"  # 8,16 -> [8,16]
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = {"true": True, "false": False}.get(text.strip().lower(), text)
    return check(value, kind, path)


def apply(cfg: TrainConfig, overrides: dict[str, Any], origin: str) -> TrainConfig:
    """`cfg` with the nested `overrides` {section: {key: value}} applied."""
    known = {f.path: f for f in fields_of()}
    changed = {}
    for section, entries in overrides.items():
        if not hasattr(cfg, section) or not isinstance(entries, dict):
            raise ConfigError(f"{origin}: unknown section [{section}]; sections are "
                              f"{', '.join(f.name for f in dataclasses.fields(TrainConfig))}")
        values = {}
        for key, value in entries.items():
            path = f"{section}.{key}"
            if path not in known:
                close = difflib.get_close_matches(path, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else " (see --help for the list)"
                raise ConfigError(f"{origin}: unknown key {path!r}{hint}")
            values[key] = check(value, known[path].type, f"{origin}: {path}")
        try:
            changed[section] = dataclasses.replace(getattr(cfg, section), **values)
        except (ValueError, TypeError) as err:  # a section's own checks (ModelConfig)
            raise ConfigError(f"{origin}: [{section}]: {err}") from None
    return dataclasses.replace(cfg, **changed)


def from_dict(values: dict[str, dict[str, Any]]) -> TrainConfig:
    """A TrainConfig from nested dicts (a saved config.json, a checkpoint's `config`)."""
    return apply(TrainConfig(), values, "saved config")


def to_dict(cfg: TrainConfig) -> dict[str, dict[str, Any]]:
    """The config as nested plain dicts (tuples become lists): for JSON, TOML or torch.save."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def preset_names() -> list[str]:
    """Names of the presets shipped in accelerated/presets/ (file names without .toml)."""
    return sorted(p.name.removesuffix(".toml") for p in _presets().iterdir()
                  if p.name.endswith(".toml"))


def _presets():
    return resources.files("accelerated").joinpath("presets")


def preset(name: str) -> dict[str, Any]:
    """The overrides of a named preset (a TOML file in accelerated/presets/)."""
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; presets are {', '.join(preset_names())}")
    return tomllib.loads(_presets().joinpath(f"{name}.toml").read_text())


def load_toml(path: str | Path) -> dict[str, Any]:
    """The settings of a TOML file, or ConfigError saying why it cannot be read."""
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


def build(preset_name: str | None = DEFAULT_PRESET, config_file: str | None = None,
          overrides: dict[str, str] | None = None, base: TrainConfig | None = None) -> TrainConfig:
    """Defaults (or `base`) <- preset <- config file <- `overrides` {"optim.lr_d": "2e-4"}
    (flag texts, or values of the field's type)."""
    cfg = base or TrainConfig()
    if preset_name:
        cfg = apply(cfg, preset(preset_name), f"preset {preset_name}")
    if config_file:
        cfg = apply(cfg, load_toml(config_file), str(config_file))
    known, flags = {f.path: f for f in fields_of()}, {}
    for path, text in (overrides or {}).items():
        section, _, key = path.partition(".")
        kind = known[path].type if path in known else Any
        where = f"command line: {path}"
        value = parse_flag(text, kind, where) if isinstance(text, str) else check(text, kind, where)
        flags.setdefault(section, {})[key] = value
    return apply(cfg, flags, "command line")


def to_toml(cfg: TrainConfig) -> str:
    """The config as TOML text (every field but those that are None), readable with `--config`."""
    blocks = [f"[{section}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in entries.items()
                                         if v is not None)
              for section, entries in to_dict(cfg).items()]
    return "\n".join(blocks)


def write_config(cfg: TrainConfig, run_dir: Path) -> None:
    """Write `cfg` as config.toml (to read) and config.json (what `--resume` reads) in `run_dir`,
    each by a rename, so a kill mid-write leaves the previous file."""
    write_text_atomic(Path(run_dir) / "config.toml", to_toml(cfg))
    write_text_atomic(Path(run_dir) / "config.json", json.dumps(to_dict(cfg), indent=2))
