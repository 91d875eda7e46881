"""Verify stage: the serving replay of the test split must match evaluate's and pass the gates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.data.split_files import read_split
from pipeline.evaluation.replay_metrics import conversation_metrics
from pipeline.stages import verify
from serving.guard import Guard
from tests.serving_fixtures import REPO_ROOT


@pytest.fixture
def setup(bundle, tmp_path: Path):
    """metrics/ as evaluate would leave it (replay of the same policy on fp32 scores), and relaxed gates."""
    split = bundle.parent / "splits" / "test.parquet"
    test = read_split(split)
    g = Guard.load(bundle, model="fp32")
    from serving.policy import Action

    actions = [
        [Action(t.index, t.role, t.action, t.reason, t.evidence) for t in d.turns]
        for d in g.assess_many([(c.id, c.turns) for c in test])
    ]
    replay = conversation_metrics(test, actions)
    md = tmp_path / "metrics"
    md.mkdir()
    (md / "replay.json").write_text(json.dumps({k: v for k, v in replay.items() if k != "rows"}))
    (md / "eval.json").write_text(json.dumps({"macro_f1": 0.9}))
    (md / "baseline.json").write_text(json.dumps({"macro_f1": 0.5}))
    configs = tmp_path / "configs"
    shutil.copytree(REPO_ROOT / "configs", configs)
    gates = yaml.safe_load((configs / "gates.yaml").read_text())
    gates["gates"]["termination_recall_min"] = 0.5  # the random tiny model never hears "end this chat"
    (configs / "gates.yaml").write_text(yaml.safe_dump(gates))
    export_cfg = yaml.safe_load((configs / "export.yaml").read_text())
    export_cfg["verify"]["enforce"] = True  # these tests exercise the enforcing path
    (configs / "export.yaml").write_text(yaml.safe_dump(export_cfg))
    args = [
        "--bundle", str(bundle), "--test-split", str(split), "--thresholds", str(tmp_path / "none.json"),
        "--metrics-dir", str(md), "--config-dir", str(configs), "--profile", "default",
    ]  # fmt: skip
    return args, md


@pytest.mark.parametrize("mode", ["live", "batch"])
def test_verify_passes_when_serving_matches_evaluate(setup, mode: str) -> None:
    args, md = setup
    assert verify.main([*args, "--mode", mode]) == 0
    out = json.loads((md / "serving.json").read_text())
    assert out["passed"] and out["matches_evaluate"] and out["degraded_turns"] == 0
    assert out["mode"] == mode and out["model"] == "model.onnx"
    assert out["comparison"]["false_termination_rate"]["ok"] is True
    assert out["gates"]["passed"] is True


def test_verify_fails_when_numbers_differ(setup, capsys) -> None:
    args, md = setup
    replay = json.loads((md / "replay.json").read_text())
    replay["overall"]["false_termination_rate"] += 0.2
    (md / "replay.json").write_text(json.dumps(replay))
    assert verify.main(args) == 1
    assert "serving replay differs from evaluate: false_termination_rate" in capsys.readouterr().err
    assert json.loads((md / "serving.json").read_text())["passed"] is False


def test_live_replay_with_worker_threads_matches_one_thread(bundle) -> None:
    """Threads sharing the one Guard (verify.workers) must not change a single turn's result, nor their order."""
    test = read_split(bundle.parent / "splits" / "test.parquet")
    guard = Guard.load(bundle)
    one = verify.replay_live(guard, test, workers=1)
    four = verify.replay_live(guard, test, workers=4)
    assert [[t.to_dict() for t in conv] for conv in one] == [[t.to_dict() for t in conv] for conv in four]
    assert [len(r) for r in four] == [len(c.turns) for c in test]
