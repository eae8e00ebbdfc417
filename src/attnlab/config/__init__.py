"""Config: pydantic models for every section, YAML load, `--set a.b=v` overrides."""

from attnlab.config.load import (
    apply_overrides,
    config_path,
    dump_config,
    load_config,
    save_config,
    validate,
)
from attnlab.config.schema import (
    AttentionMixer,
    LMTextData,
    MambaMixer,
    ModelConfig,
    RepeatTokensData,
    RunConfig,
    TrainConfig,
)

__all__ = [
    "AttentionMixer",
    "LMTextData",
    "MambaMixer",
    "ModelConfig",
    "RepeatTokensData",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "config_path",
    "dump_config",
    "load_config",
    "save_config",
    "validate",
]
