"""The YAML params DVC tracks: the active profile merged over the base configs, read into typed configs.

Stages read parameters only through `section(...)`, which returns a frozen dataclass: every key the class
declares must be in the YAML and no other key may be, so a typo or a forgotten key stops the run with one
line naming it, and there are no defaults in code that could disagree with the YAML. `dvc.yaml` lists, per
stage, the same sections of `configs/<name>.yaml` and of the active profile's `configs/profiles/<profile>.yaml`
(tests/test_dvc_deps.py checks it), so DVC re-runs a stage exactly when what it reads changes.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

CONFIG_DIR = Path("configs")
PROFILES = ("default", "smoke", "real")
T = TypeVar("T")


class ConfigError(Exception):
    """A bad configuration or a missing input: the stage stops with this one line and exit status 2."""


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge mappings; lists and scalars in `override` replace those in `base`."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    return data


def active_profile(config_dir: Path | str = CONFIG_DIR) -> str:
    profile = _read_yaml(Path(config_dir) / "profile.yaml").get("profile", "default")
    if profile not in PROFILES:
        raise ConfigError(
            f"unknown profile {profile!r} in {Path(config_dir) / 'profile.yaml'} (expected {', '.join(PROFILES)})"
        )
    return profile


def load_config(name: str, profile: str | None = None, config_dir: Path | str = CONFIG_DIR) -> dict[str, Any]:
    """`configs/<name>.yaml` with `configs/profiles/<profile>.yaml[name]` merged over it (plain mappings)."""
    config_dir = Path(config_dir)
    base = _read_yaml(config_dir / f"{name}.yaml")
    profile = profile or active_profile(config_dir)
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r} (expected {', '.join(PROFILES)})")
    overlay_path = config_dir / "profiles" / f"{profile}.yaml"
    overlay = _read_yaml(overlay_path).get(name) or {} if overlay_path.exists() else {}
    return deep_merge(base, overlay)


def section(
    cls: type[T] | Callable[[Any], T], name: str, key: str, profile: str | None = None, config_dir: Path | str = CONFIG_DIR
) -> T:
    """`configs/<name>.yaml[key]` (the active profile merged in) as a `cls` (a dataclass, read by `typed`, or
    a parser such as `PolicyConfig.from_dict`); ConfigError on any mismatch."""
    merged = load_config(name, profile, config_dir)
    if key not in merged:
        raise ConfigError(f"configs/{name}.yaml: section {key!r} missing")
    if dataclasses.is_dataclass(cls):
        return typed(cls, merged[key], f"{name}.{key}")  # type: ignore[arg-type]
    try:
        return cls(merged[key])
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"{name}.{key}: {exc}") from None


def typed(cls: type[T], raw: Any, where: str) -> T:
    """Build dataclass `cls` from a mapping: every field required, no unknown key, values type-checked
    (nested dataclasses, `X | None`, `list[X]`, `dict[str, X]`, `Literal[...]`, int/float/bool/str).
    A class may check its own values in `__post_init__` by raising ValueError."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    missing = [f for f in fields if f not in raw]
    unknown = sorted(str(k) for k in raw if k not in fields)
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    values = {f: _value(hints[f], raw[f], f"{where}.{f}") for f in fields}
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _value(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return typed(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _value(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: must be a list, got {type(value).__name__}")
        item = args[0] if args else Any
        out = [_value(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: must be a mapping, got {type(value).__name__}")
        item = args[1] if len(args) == 2 else Any
        return {str(k): _value(item, v, f"{where}.{k}") for k, v in value.items()}
    return _scalar(tp, value, where)


def _scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string, got {value!r}")
        return value
    raise TypeError(f"{where}: unsupported config type {tp!r}")


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: for logging params to MLflow."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{key}."))
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            out.update(flatten(dataclasses.asdict(v), f"{key}."))
        else:
            out[key] = v
    return out
