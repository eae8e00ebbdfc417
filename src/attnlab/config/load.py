"""Load a `RunConfig` from YAML with `--set a.b=value` overrides.

A config file may start from another one with `base: other.yaml` (a path relative to the
file); the two are merged key by key, the file's own keys winning. Overrides are applied
after the merge and their values are parsed as YAML (`--set train.lr=1e-3` is a float,
`--set model.mixer.conv_kernel=null` is None).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import ValidationError

from attnlab.config.schema import DataConfig, MixerConfig, RunConfig
from attnlab.errors import ConfigError


def read_mapping(path: Path, what: str = "file") -> dict[str, Any]:
    """One YAML file's top-level mapping; a missing file, bad YAML or another top level
    is a `ConfigError` naming the file."""
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(raw).__name__}")
    return raw


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read one YAML mapping, following `base:` links (cycles are errors)."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: 'base' links form a cycle")
    raw = read_mapping(path, "config file")
    base = raw.pop("base", None)
    if base is None:
        return raw
    return deep_merge(_read_yaml(path.parent / base, (*seen, path)), raw)


TAGS = ("name", "task")  # a mapping whose tag changes is another kind: it replaces


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Merge two nested mappings; values of `top` win, mappings merge recursively, except
    that a mapping whose tag (`name` of a mixer, `task` of data) differs from the base's
    replaces it (an attention mixer's `n_heads` means nothing to a Mamba mixer)."""
    out = dict(base)
    for key, value in top.items():
        old = out.get(key)
        retagged = isinstance(old, dict) and any(
            t in value and t in old and value[t] != old[t] for t in TAGS if isinstance(value, dict)
        )
        if isinstance(value, dict) and isinstance(old, dict) and not retagged:
            out[key] = deep_merge(old, value)
        else:
            out[key] = value
    return out


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` strings to a nested mapping (values parsed as YAML)."""
    out = deep_merge({}, raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form a.b=value")
        value = _parse_value(text)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            else:
                child = node[part] = dict(child)
            node = child
        node[parts[-1]] = value
    return out


def _union_tags() -> set[str]:
    """The tags of the tagged unions (data.task, model.mixer.name), read off the schema."""
    tags = set()
    for union, key in ((DataConfig, "task"), (MixerConfig, "name")):
        members = get_args(get_args(union)[0])  # Annotated[A | B, ...] -> (A, B)
        tags.update(cls.model_fields[key].default for cls in members)
    return tags


_UNION_TAGS = _union_tags()


def _parse_value(text: str) -> Any:
    """YAML scalar parsing, plus numbers that YAML 1.1 leaves as strings (`1e-3`)."""
    if not text.strip():
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per problem: the dotted field path, what is wrong, and the source file."""
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        # discriminated unions put the tag in the path (data.lm_text.seq_len): drop it
        loc = ".".join(str(p) for p in e["loc"] if str(p) not in _UNION_TAGS)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {loc or '(root)'}: {msg}")
    return "\n".join(lines)


def validate(raw: dict[str, Any], source: str = "<config>") -> RunConfig:
    """Validate a mapping as a `RunConfig`, raising `ConfigError` that names fields."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Load, merge `base:` files, apply overrides and validate one config file."""
    raw = apply_overrides(_read_yaml(Path(path)), overrides or [])
    return validate(raw, str(path))


def dump_config(cfg: RunConfig) -> str:
    """The fully resolved config as YAML (what `config.yaml` in a run directory holds)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def save_config(cfg: RunConfig, path: Path) -> None:
    """Write the resolved config to `path`."""
    path.write_text(dump_config(cfg), encoding="utf-8")


PACKAGED = Path(__file__).resolve().parent.parent / "configs"


def packaged_configs() -> list[tuple[str, str, str]]:
    """(kind, name, description) of every packaged config (kind `config`, for `attnlab
    train NAME`) and sweep spec (`sweep`, for `attnlab sweep NAME`), sorted; the
    description is the first sentence of the file's leading comment."""
    rows = []
    for path in sorted(PACKAGED.rglob("*.yaml")):
        name = path.relative_to(PACKAGED).with_suffix("").as_posix()
        kind = "sweep" if name.startswith("sweeps/") else "config"
        rows.append((kind, name.removeprefix("sweeps/"), _description(path)))
    return sorted(rows)


def _description(path: Path) -> str:
    """The first sentence of a YAML file's leading `#` comment ('' without one)."""
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        words.append(line.lstrip("#").strip())
    text = " ".join(words)
    end = re.search(r"\.\s+(?=[A-Z`(])", text)  # not "et al. 2022"
    return text[: end.start() + 1] if end else text


def config_path(name: str | Path, near: Path | None = None) -> Path:
    """A config file: a path (absolute, or relative to `near` then to the working
    directory), else a name under the packaged configs (`smeared_keys/conv_attn`).

    A packaged config's absolute path from another install (a sweep database committed
    on one machine and resumed on another, `/old/venv/.../attnlab/configs/piglatin/
    base.yaml`) that is not there resolves to this install's packaged config of the
    same name."""
    p = Path(name)
    cands = [near / p] if near is not None and not p.is_absolute() else []
    cands.append(p)
    for c in cands:
        if c.is_file():
            return c
    if p.is_absolute():  # another install's packaged config: its name under configs/
        parts = p.parts
        for i in range(len(parts) - 1, 0, -1):
            if parts[i - 1 : i + 1] == ("attnlab", "configs"):
                p = Path(*parts[i + 1 :])
                break
    packaged = PACKAGED / p
    for cand in (packaged, packaged.with_suffix(".yaml")):
        if cand.is_file():
            return cand
    return p  # load_config reports it as missing
