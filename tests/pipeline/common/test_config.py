"""Params loading: profiles merge over the base configs; a bad config stops with one clear line."""

from __future__ import annotations

import pytest

from pipeline.common.config import ConfigError, deep_merge, flatten, load_config
from tests.conftest import REPO_ROOT


def test_profiles_merge(tmp_path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profile.yaml").write_text("profile: smoke\n")
    (tmp_path / "data.yaml").write_text("a: 1\nb: {c: 2, d: 3}\n")
    (tmp_path / "profiles" / "smoke.yaml").write_text("data: {b: {c: 20}}\n")
    assert load_config("data", config_dir=tmp_path) == {"a": 1, "b": {"c": 20, "d": 3}}
    assert load_config("data", profile="default", config_dir=tmp_path)["b"]["c"] == 2


def test_bad_configs_exit_with_one_line(tmp_path, capsys) -> None:
    (tmp_path / "profile.yaml").write_text("profile: nope\n")
    (tmp_path / "data.yaml").write_text("a: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config("data", config_dir=tmp_path)
    assert info.value.code == 2 and "unknown profile" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not found"):
        load_config("missing", profile="default", config_dir=tmp_path)
    (tmp_path / "broken.yaml").write_text("a: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config("broken", profile="default", config_dir=tmp_path)


def test_repo_configs_load_for_every_profile() -> None:
    for profile in ("default", "smoke", "real"):
        for name in ("data", "policy"):
            assert load_config(name, profile=profile, config_dir=REPO_ROOT / "configs")


def test_helpers() -> None:
    assert deep_merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}
    assert flatten({"a": {"b": 1}, "c": 2}) == {"a.b": 1, "c": 2}
