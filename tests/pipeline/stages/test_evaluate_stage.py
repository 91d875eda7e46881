"""End to end on smoke-sized fixture splits: train -> baseline -> evaluate, MLflow in a tmp SQLite store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from serving.calibration import temperature_vector
from serving.labels import MODEL_LABELS
from serving.policy import PolicyConfig
from tests.conftest import REPO_ROOT
from tests.train_fixture_factory import write_fixture_splits


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """Run the three stages once for the module (the smoke profile's tiny random BERT)."""
    tmp = tmp_path_factory.mktemp("e2e")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlruns.db'}")
    mp.setenv("ESCALATION_GUARD_SYSTEM_METRICS", "0")
    mp.chdir(REPO_ROOT)
    from pipeline.stages import baseline, evaluate, train

    splits = write_fixture_splits(tmp, n_train=96, n_valid=48, n_test=48)
    assert (
        train.main(
            [
                "--profile",
                "smoke",
                "--splits",
                str(splits),
                "--out",
                str(tmp / "ckpt"),
                "--metrics",
                str(tmp / "metrics" / "train.json"),
                "--history",
                str(tmp / "plots" / "data" / "train_history.csv"),
            ]
        )
        == 0
    )
    assert (
        baseline.main(["--profile", "smoke", "--splits", str(splits), "--out", str(tmp / "metrics" / "baseline.json")])
        == 0
    )
    rc = evaluate.main(eval_args(tmp, splits))
    yield tmp, splits, rc
    mp.undo()


def eval_args(tmp: Path, splits: Path) -> list[str]:
    return [
        "--profile",
        "smoke",
        "--splits",
        str(splits),
        "--checkpoint",
        str(tmp / "ckpt"),
        "--thresholds",
        str(tmp / "thresholds.json"),
        "--baseline",
        str(tmp / "metrics" / "baseline.json"),
        "--metrics-dir",
        str(tmp / "metrics"),
        "--plots-dir",
        str(tmp / "plots" / "eval"),
        "--plots-data",
        str(tmp / "plots" / "data" / "eval"),
        "--errors",
        str(tmp / "metrics" / "worst_errors.csv"),
        "--test-logits",
        str(tmp / "test_logits.npz"),
    ]


def test_stages_write_their_outputs(run_dir):
    tmp, _, rc = run_dir
    assert rc == 0  # smoke: gates not enforced
    for name in ("train.json", "baseline.json", "eval.json", "replay.json", "gates.json", "worst_errors.csv"):
        assert (tmp / "metrics" / name).exists(), name
    for name in ("pr_curves.png", "confusion.png", "reliability.png", "timelines.png"):
        assert (tmp / "plots" / "eval" / name).stat().st_size > 1000
    data = tmp / "plots" / "data" / "eval"
    assert (data / "confusion.csv").read_text().startswith("actual,predicted")
    assert (data / "reliability_calibrated.csv").exists() and (data / "timelines.json").exists()
    assert (tmp / "plots" / "data" / "train_history.csv").read_text().startswith("epoch,")
    import numpy as np

    with np.load(tmp / "test_logits.npz") as z:  # handed to export's parity check
        assert z["logits"].shape == (len(z["conv_ids"]), 5) and str(z["checkpoint"])


def test_thresholds_file_matches_the_contract(run_dir):
    tmp, _, _ = run_dir
    doc = json.loads((tmp / "thresholds.json").read_text())
    assert {
        "thresholds",
        "temperatures",
        "policy",
        "target_false_termination_rate",
        "valid_false_termination_rate",
    } <= set(doc)
    assert set(doc["thresholds"]) == set(MODEL_LABELS)
    temperature_vector(doc["temperatures"])  # valid temperatures for serving
    policy = PolicyConfig.from_dict(doc["policy"])
    assert dict(policy.thresholds) == doc["thresholds"]
    target = yaml.safe_load((REPO_ROOT / "configs" / "policy.yaml").read_text())["calibration"]
    assert doc["target_false_termination_rate"] == target["target_false_termination_rate"]


def test_metrics_replay_and_gates(run_dir):
    tmp, _, _ = run_dir
    ev = json.loads((tmp / "metrics" / "eval.json").read_text())
    assert 0.0 <= ev["macro_f1"] <= 1.0
    for name in MODEL_LABELS:
        assert {"precision", "recall", "f1", "pr_auc", "roc_auc"} <= set(ev["turn"][name])
        assert {"ece_before", "ece_after"} <= set(ev["calibration"]["valid"][name])
    replay = json.loads((tmp / "metrics" / "replay.json").read_text())
    assert {"overall", "per_category", "self_harm_ended"} <= set(replay)
    assert "escalating_abuse" in replay["per_category"]
    # every wrong test conversation is attributed (the random smoke model gets many wrong)
    attribution = replay["error_attribution"]
    rows = json.loads((tmp / "plots" / "data" / "eval" / "error_attribution.json").read_text())
    ov = replay["overall"]
    assert attribution["missed"]["overall"]["errors"] == ov["should_end"] - ov["terminated"]
    assert attribution["false_end"]["overall"]["errors"] == ov["false_terminations"]
    assert len(rows) == sum(attribution[k]["overall"]["errors"] for k in ("missed", "early", "false_end"))
    gates = json.loads((tmp / "metrics" / "gates.json").read_text())
    assert gates["enforced"] is False and set(gates["gates"]) >= {"self_harm_ended", "beats_baseline"}
    base = json.loads((tmp / "metrics" / "baseline.json").read_text())
    assert "tfidf_lr" in base and "zero_shot" in base["profanity_check"]


def test_mlflow_run_has_params_metrics_artifacts_and_the_verdict(run_dir):
    import mlflow

    from pipeline.common import tracking

    tmp, _, _ = run_dir
    info = json.loads((tmp / "ckpt" / "train_info.json").read_text())
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlruns.db'}")
    client = mlflow.MlflowClient()
    run = client.get_run(info["mlflow_run_id"])
    assert run.info.run_name.startswith("train-smoke-")
    assert {"git_commit", "data_version", "profile", "base_model"} <= set(run.data.tags)
    assert run.data.params["train.model.base_model"] == "tiny-random-bert"
    assert "policy.calibration.target_false_termination_rate" in run.data.params
    assert "valid_loss" in run.data.metrics and "test.macro_f1" in run.data.metrics
    assert "baseline.tfidf_lr.macro_f1" in run.data.metrics
    assert "replay.errors.missed.needs_several" in run.data.metrics
    history = client.get_metric_history(run.info.run_id, "valid_loss")
    assert len(history) >= 1
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"plots", "checkpoint", "metrics"} <= arts
    assert any(a.path.endswith("worst_errors.json") for a in client.list_artifacts(run.info.run_id))
    assert run.inputs.dataset_inputs, "training dataset logged with mlflow.data"
    assert run.data.tags["gates_passed"] == "false"
    # what a reviewer reads first: the experiment opens on runs, the verdict is the run's description,
    # the headline numbers have their own section; nothing is registered before the bundle exists
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    gates = json.loads((tmp / "metrics" / "gates.json").read_text())
    note = run.data.tags[tracking.NOTE_TAG]
    assert note.startswith("### Quality gates\n**FAILED**: " + ", ".join(gates["failed"]))
    assert "### Headline (test split)" in note and "termination recall" in note
    replay = json.loads((tmp / "metrics" / "replay.json").read_text())
    assert run.data.metrics["headline/termination_recall"] == replay["overall"]["termination_recall"]
    assert run.data.metrics["headline/gates_passed"] == 0.0
    assert sum(k.startswith("headline/") for k in run.data.metrics) <= 8
    assert client.search_registered_models() == []


def test_enforced_gates_fail_the_stage(run_dir, tmp_path, monkeypatch, capsys):
    """With enforce on, the random smoke model fails and the stage exits non-zero naming the gate."""
    tmp, splits, _ = run_dir
    shutil.copytree(REPO_ROOT / "configs", tmp_path / "configs")
    smoke = tmp_path / "configs" / "profiles" / "smoke.yaml"
    doc = yaml.safe_load(smoke.read_text())
    doc["gates"]["gates"]["enforce"] = True
    smoke.write_text(yaml.safe_dump(doc))
    monkeypatch.chdir(tmp_path)
    from pipeline.stages import evaluate

    out = tmp_path / "out"
    args = eval_args(out, splits)
    args[args.index("--checkpoint") + 1] = str(tmp / "ckpt")
    args[args.index("--baseline") + 1] = str(tmp / "metrics" / "baseline.json")
    rc = evaluate.main([*args, "--no-mlflow"])
    assert rc == 1
    printed = capsys.readouterr().out
    assert "quality gates failed" in printed and "beats_baseline" in printed
    assert json.loads((out / "metrics" / "gates.json").read_text())["passed"] is False
