"""Params loading: profiles merge over the base configs; typed sections refuse unknown, missing and mistyped
keys with one line naming them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from pipeline.common.cli import run_stage
from pipeline.common.config import ConfigError, deep_merge, flatten, load_config, section, typed
from tests.conftest import REPO_ROOT


def test_profiles_merge(tmp_path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profile.yaml").write_text("profile: smoke\n")
    (tmp_path / "data.yaml").write_text("a: 1\nb: {c: 2, d: 3}\n")
    (tmp_path / "profiles" / "smoke.yaml").write_text("data: {b: {c: 20}}\n")
    assert load_config("data", config_dir=tmp_path) == {"a": 1, "b": {"c": 20, "d": 3}}
    assert load_config("data", profile="default", config_dir=tmp_path)["b"]["c"] == 2


def test_bad_config_files_are_config_errors(tmp_path) -> None:
    (tmp_path / "profile.yaml").write_text("profile: nope\n")
    (tmp_path / "data.yaml").write_text("a: 1\n")
    with pytest.raises(ConfigError, match="unknown profile"):
        load_config("data", config_dir=tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        load_config("missing", profile="default", config_dir=tmp_path)
    (tmp_path / "broken.yaml").write_text("a: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config("broken", profile="default", config_dir=tmp_path)


@dataclass(frozen=True)
class Inner:
    rate: float
    names: list[str]


@dataclass(frozen=True)
class Outer:
    n: int
    mode: Literal["a", "b"]
    inner: Inner
    cap: int | None
    weights: dict[str, float]

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n must be >= 0")


GOOD = {"n": 1, "mode": "a", "inner": {"rate": 1, "names": ["x"]}, "cap": None, "weights": {"x": 2}}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("mode"), "cfg: missing key\\(s\\) mode"),
        (lambda d: d.update(colour="red"), "cfg: unknown key\\(s\\) colour"),
        (lambda d: d["inner"].update(extra=1), "cfg.inner: unknown key\\(s\\) extra"),
        (lambda d: d.update(n="3"), "cfg.n: must be an integer"),
        (lambda d: d.update(n=True), "cfg.n: must be an integer"),
        (lambda d: d.update(n=-1), "cfg: n must be >= 0"),
        (lambda d: d.update(mode="c"), "cfg.mode: must be one of 'a', 'b'"),
        (lambda d: d["inner"].update(names="x"), "cfg.inner.names: must be a list"),
        (lambda d: d.update(weights={"x": "heavy"}), "cfg.weights.x: must be a number"),
        (lambda d: d.update(cap=2.5), "cfg.cap"),
    ],
)
def test_typed_sections_refuse_what_the_class_does_not_declare(edit, message: str) -> None:
    import copy

    assert typed(Outer, GOOD, "cfg") == Outer(1, "a", Inner(1.0, ["x"]), None, {"x": 2.0})
    bad = copy.deepcopy(GOOD)
    edit(bad)
    with pytest.raises(ConfigError, match=message):
        typed(Outer, bad, "cfg")


def test_every_stage_reads_its_sections_from_the_repo_configs_in_every_profile() -> None:
    from tools.dvc_deps import stage_sections

    for profile in ("default", "smoke", "real"):
        for stage, sections in stage_sections().items():
            for (name, key), cls in sections.items():
                assert section(cls, name, key, profile, REPO_ROOT / "configs") is not None, (stage, name, key)


def test_a_bad_config_stops_a_stage_with_one_line(tmp_path, capsys) -> None:
    def main(argv):
        raise ConfigError("train.optim.lr: must be a number, got 'fast'")

    assert run_stage(main, []) == 2
    assert capsys.readouterr().err.strip() == "config error: train.optim.lr: must be a number, got 'fast'"


def test_helpers() -> None:
    assert deep_merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}
    assert flatten({"a": {"b": 1}, "c": 2}) == {"a.b": 1, "c": 2}
