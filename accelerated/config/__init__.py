"""The training configuration: what can be set (`schema`), and how a run's settings are built
from defaults, presets, files and flags and written (`build`), and checked (`validate`)."""

from accelerated.config.build import (
    DEFAULT_PRESET,
    ConfigError,
    FieldInfo,
    apply,
    build,
    check,
    fields_of,
    from_dict,
    load_toml,
    parse_flag,
    preset,
    preset_names,
    to_dict,
    to_toml,
    type_name,
    write_config,
)
from accelerated.config.schema import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig
from accelerated.config.validate import validate

__all__ = [
    "DEFAULT_PRESET",
    "ConfigError",
    "DataConfig",
    "FieldInfo",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "apply",
    "build",
    "check",
    "fields_of",
    "from_dict",
    "load_toml",
    "parse_flag",
    "preset",
    "preset_names",
    "to_dict",
    "to_toml",
    "type_name",
    "validate",
    "write_config",
]
