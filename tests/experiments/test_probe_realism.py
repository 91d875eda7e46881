"""The realism probe runs end to end on a tiny ConvAbuse-shaped fixture (never on /work/shared)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from experiments import probe_realism

ROWS = [
    ("fuck you", ["", "", "1", "", ""], ["", "", "", "1", ""]),
    ("you are so stupid", ["", "", "1", "", ""], ["", "", "1", "", ""]),
    ("send nudes", ["", "", "", "1", ""], ["", "", "", "", "1"]),
    ("yes", ["1", "", "", "", ""], ["1", "", "", "", ""]),
    ("hi", ["1", "", "", "", ""], ["1", "", "", "", ""]),
    ("how are you", ["1", "", "", "", ""], ["0, 1", "", "", "", ""]),
    ("shut up", ["1", "", "", "", ""], ["", "", "1", "", ""]),  # a tie: not abusive
]


def _write_fixture(folder: Path) -> None:
    values = ("1", "0", "-1", "-2", "-3")
    header = ["example_id", "conv_id", "prev_agent", "prev_user", "agent", "user", "bot"]
    header += [f"Annotator{a}_is_abuse.{v}" for a in (1, 2) for v in values]
    for name in ("ConvAbuseEMNLPtrain.csv", "ConvAbuseEMNLPvalid.csv"):
        with (folder / name).open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for i, (text, a1, a2) in enumerate(ROWS):
                w.writerow([i, 100 + i, "", "", "Hello, how can I help?", text, "E.L.I.Z.A.", *a1, *a2])


def test_probe_reports_all_three_numbers(tmp_path: Path) -> None:
    _write_fixture(tmp_path)
    out = tmp_path / "realism.json"
    rc = probe_realism.main(["--n", "300", "--seed", "5", "--convabuse", str(tmp_path), "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert set(res["template_disjoint_test"]) == {"harmful_request", "abuse", "end_request", "self_harm_risk"}
    for key in ("convabuse_valid_zero_shot_abuse", "convabuse_train_zero_shot_abuse"):
        assert 0.0 <= res[key] <= 1.0
    assert res["convabuse_valid_rows"] == len(ROWS)
    assert res["convabuse_valid_abusive"] == 3  # the tie is not abusive
    assert 0.0 <= res["template_sharing_test"]["abuse"] <= 1.0


def test_probe_without_convabuse_still_scores_synthetic(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    rc = probe_realism.main(["--n", "200", "--convabuse", str(tmp_path / "missing"), "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert "convabuse_valid_zero_shot_abuse" not in res
    assert res["template_disjoint_test"]["abuse"] >= 0.0


def test_probe_rejects_tiny_n(tmp_path: Path) -> None:
    assert probe_realism.main(["--n", "5", "--out", str(tmp_path / "x.json")]) == 2
