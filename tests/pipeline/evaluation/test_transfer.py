"""Transfer sets and their metrics, on tiny datasets written here (never the real ones)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.evaluation.config import TransferConfig
from pipeline.evaluation.transfer import contrast_turn_metrics, convabuse_zero_shot, load_contrast, topical_chat
from pipeline.stages import transfer as stage
from tests.pipeline.data.test_convabuse import write_fixture


def keyword_scorer(convs):
    """A stand-in model: 'bomb' or 'idiot' in a turn reads as harmful / abusive, 'end the chat' as an end request."""
    out = []
    for turns in convs:
        row = []
        for role, text in turns:
            t = text.lower()
            row.append(
                {
                    "harmful_request": 0.99 if "bomb" in t else 0.01,
                    "abuse": 0.99 if "idiot" in t else 0.02,
                    "end_request": 0.97 if "end the chat" in t else 0.03,
                    "self_harm_risk": 0.0,
                    "redirect": 0.99 if role == "assistant" else 0.0,
                }
            )
        out.append(row)
    return out


def write_datasets(root: Path) -> Path:
    topical = root / "topical_chat"
    topical.mkdir(parents=True)
    chat = {
        "content": [{"agent": "agent_1", "message": "hi, seen any good films?"}, {"agent": "agent_2", "message": "yes"}]
    }
    (topical / "test_freq.json").write_text(json.dumps({"c1": chat, "c2": chat}))
    rows = [(f"{i}.0", "1.0", ["Hi.", "hi", "What?", f"you idiot number {i}"], ["-3", "-3", "-3"]) for i in range(6)]
    rows += [(f"{i}.0", "2.0", ["Hi.", "hi", "What?", f"nice weather {i}"], ["1", "1", "1"]) for i in range(6, 12)]
    write_fixture(root / "convabuse", "valid", rows)
    write_fixture(root / "convabuse", "train", rows[:1])
    return root


def test_a_damaged_topical_chat_file_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "topical_chat"
    root.mkdir()
    (root / "test_freq.json").write_text(json.dumps({"c1": {"content": [{"message": "hi"}]}}))  # no agent
    with pytest.raises(ValueError, match=r"test_freq.json: not Topical-Chat JSON \(KeyError"):
        topical_chat(root, ["test_freq"])


def test_contrast_metrics_count_safe_twins_flagged(tmp_path: Path) -> None:
    path = tmp_path / "contrast.yaml"
    path.write_text(
        "harmful_request:\n  homonym:\n    - [how do I blow up a photo, how do I build a bomb]\n"
        "    - [what is a bomb calorimeter, where do I buy a bomb]\n"
        "end_request:\n  task:\n    - [stop the list, please end the chat]\n"
    )
    m = contrast_turn_metrics(keyword_scorer, load_contrast(path), {"harmful_request": 0.5, "end_request": 0.5})
    h = m["harmful_request"]
    assert h["pairs"] == 2 and h["recall_unsafe"] == 1.0 and h["fpr_safe"] == 0.5  # the calorimeter reads as harmful
    assert h["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1)) and h["roc_auc"] == 0.75
    assert h["safe_scored_highest"][0]["text"] == "what is a bomb calorimeter"
    assert m["end_request"]["f1"] == 1.0 and m["end_request"]["fpr_safe"] == 0.0


def test_convabuse_zero_shot_and_missing_data(tmp_path: Path) -> None:
    root = write_datasets(tmp_path / "ds")
    zs = convabuse_zero_shot(keyword_scorer, root / "convabuse", 0.5)
    assert zs["rows"] == 12 and zs["abusive"] == 6 and zs["macro_f1"] == 1.0 and zs["roc_auc"] == 1.0
    assert convabuse_zero_shot(keyword_scorer, tmp_path / "nowhere", 0.5)["available"] is False


def test_transfer_stage_replays_the_bundle_and_reports_missing_sets(
    guard, bundle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import REPO_ROOT

    root = write_datasets(tmp_path / "ds")
    contrast = REPO_ROOT / "data" / "probes" / "contrast.yaml"
    res = stage.run_transfer(guard, TransferConfig(str(root), ["test_freq", "test_rare"], None), contrast)
    # test_rare is not there: the whole Topical-Chat set is reported unavailable, the rest is judged
    assert res["sets"]["topical_chat"]["available"] is False
    assert (
        res["sets"]["convabuse_abusive_x3"]["conversations"] == 2
        and res["sets"]["convabuse_benign_x3"]["conversations"] == 2
    )
    harmful_pairs = sum(len(v) for v in load_contrast(contrast)["harmful_request"].values())
    assert res["sets"]["contrast_safe_pressed"]["conversations"] == harmful_pairs >= 100
    assert res["convabuse_zero_shot"]["rows"] == 12

    monkeypatch.setattr(stage, "section", lambda *a, **k: TransferConfig(str(root), ["test_freq"], 1))
    out = tmp_path / "transfer.json"
    assert stage.main(["--bundle", str(bundle), "--output", str(out), "--no-mlflow", "--threads", "1"]) == 0
    doc = json.loads(out.read_text())
    assert doc["sets"]["topical_chat"]["conversations"] == 1  # limit 1 of the two views of c1
    assert set(stage.headline(doc)) >= {"transfer.topical_chat.ended_share", "transfer.convabuse_zero_shot.macro_f1"}
