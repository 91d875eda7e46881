"""Loading the YAML params that DVC tracks, with the active profile's overrides merged in.

Stages read their parameters only through `load_config` so that what DVC sees
as a dependency is exactly what the stage used.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path("configs")
PROFILES = ("default", "smoke", "real")


class ConfigError(SystemExit):
    """A bad configuration: stops the run with one clear line and exit status 2."""

    def __init__(self, message: str) -> None:
        print(f"config error: {message}", file=sys.stderr)
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


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


def active_profile(config_dir: Path = CONFIG_DIR) -> str:
    profile = _read_yaml(config_dir / "profile.yaml").get("profile", "default")
    if profile not in PROFILES:
        raise ConfigError(
            f"unknown profile {profile!r} in {config_dir / 'profile.yaml'} (expected {', '.join(PROFILES)})"
        )
    return profile


def load_config(name: str, profile: str | None = None, config_dir: Path | str = CONFIG_DIR) -> dict[str, Any]:
    """`configs/<name>.yaml` with `configs/profiles/<profile>.yaml[name]` merged over it."""
    config_dir = Path(config_dir)
    base = _read_yaml(config_dir / f"{name}.yaml")
    profile = profile or active_profile(config_dir)
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r} (expected {', '.join(PROFILES)})")
    overlay_path = config_dir / "profiles" / f"{profile}.yaml"
    if profile != "default" and overlay_path.exists():
        overlay = _read_yaml(overlay_path).get(name) or {}
        base = deep_merge(base, overlay)
    return base


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: for logging params to MLflow."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out
