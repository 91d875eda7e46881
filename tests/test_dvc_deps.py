"""dvc.yaml lists, per stage, exactly the code it imports and the config sections it reads (tools/dvc_deps.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT
from tools.dvc_deps import closure, differences, expected_deps, overlay_gaps


def test_every_stage_lists_exactly_what_it_imports_and_reads() -> None:
    assert differences(REPO_ROOT / "dvc.yaml", REPO_ROOT) == []
    assert overlay_gaps(REPO_ROOT) == []


def test_a_removed_dep_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "dvc.yaml"
    doc = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
    doc["stages"]["evaluate"]["deps"].remove("pipeline/model/modeling.py")
    doc["stages"]["train"]["deps"].append("pipeline/stages/export.py")
    doc["stages"]["train"]["params"][0]["configs/train.yaml"].remove("optim")
    copy.write_text(yaml.safe_dump(doc))
    problems = differences(copy, REPO_ROOT)
    assert "evaluate: imports pipeline/model/modeling.py, which is not in its deps" in problems
    assert "train: lists pipeline/stages/export.py, which it does not import" in problems
    assert any(p.startswith("train: params") for p in problems)


def test_imports_inside_functions_count_and_lazy_package_attributes_do_not(tmp_path: Path) -> None:
    for pkg in ("pipeline", "serving"):
        shutil.copytree(REPO_ROOT / pkg, tmp_path / pkg)
    stage = tmp_path / "pipeline" / "stages" / "probe_stage.py"
    stage.write_text("def main():\n    from pipeline.common import jsonl  # lazy, still a dep\n")
    files = {str(p.relative_to(tmp_path)) for p in closure("pipeline.stages.probe_stage", tmp_path)}
    assert "pipeline/common/jsonl.py" in files and "pipeline/__init__.py" in files
    assert "serving/guard.py" not in files  # serving/__init__'s __getattr__ imports run only when used
    stages = {"s": {"cmd": "python -m pipeline.stages.probe_stage"}}
    assert expected_deps(stages, tmp_path)["s"] == sorted(files)
    stage.write_text("from serving import Guard  # a lazy attribute: its module is imported when used\n")
    files = {str(p.relative_to(tmp_path)) for p in closure("pipeline.stages.probe_stage", tmp_path)}
    assert "serving/guard.py" in files


def test_another_profile_is_not_a_dependency_of_the_default_pipeline() -> None:
    doc = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
    for name, stage in doc["stages"].items():
        files = [next(iter(p)) for p in stage.get("params") or []]
        assert not any("profiles/smoke" in f or "profiles/real" in f for f in files), name
