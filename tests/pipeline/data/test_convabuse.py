"""ConvAbuse adapter on tiny CSV fixtures written here (never the real dataset)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pipeline.data.sources.convabuse import ConvAbuseError, main, read_convabuse, summarize
from serving.schema import parse_conversation

VOTES = ("1", "0", "-1", "-2", "-3")


def _header(n_annot: int = 3) -> list[str]:
    head = ["example_id", "conv_id", "prev_agent", "prev_user", "agent", "user", "bot"]
    for a in range(1, n_annot + 1):
        head += [f"Annotator{a}_is_abuse.{v}" for v in VOTES]
        # the real files repeat this name for annotators 7 and 8: make sure duplicate names are harmless
        head += ["Annotator1_transphobic"]
    return head


def _votes(choices: list[str | None]) -> list[str]:
    """One annotator per entry: a vote value, a 'repeat' like '0|1' (the same annotator twice), or None."""
    cells: list[str] = []
    for choice in choices:
        if choice is None:
            cells += ["", "", "", "", "", ""]
            continue
        picks = choice.split("|")
        cells += [", ".join("1" if p == v else "0" for p in picks) for v in VOTES] + ["0"]
    return cells


def write_fixture(root: Path, split: str, rows: list[tuple[str, str, list[str], list[str | None]]]) -> None:
    """rows: (example_id, conv_id, [prev_agent, prev_user, agent, user], annotator choices)."""
    root.mkdir(parents=True, exist_ok=True)
    name = {"train": "ConvAbuseEMNLPtrain.csv", "valid": "ConvAbuseEMNLPvalid.csv"}[split]
    with (root / name).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(_header())
        for ex, conv, turns, choices in rows:
            w.writerow([ex, conv, *turns, "E.L.I.Z.A.", *_votes(choices)])


@pytest.fixture()
def convabuse_dir(tmp_path: Path) -> Path:
    root = tmp_path / "convabuse"
    write_fixture(
        root,
        "train",
        [
            ("1.0", "100.0", ["Hello.", "hi", "How are you?", "you are stupid"], ["-1", "-2", "1"]),  # 2 of 3
            ("2.0", "100.0", ["Go on.", "ok", "Tell me more.", "fine"], ["1", "1", None]),  # benign
            ("3.0", "2.62733E+15", ["", "", "Hi there.", "idiot bot"], ["-1", "1", None]),  # tie -> benign
            ("4.0", "300.0", ["Go on.", "hm", "And?", "shut up"], ["0|-1", "-1", "1"]),  # 0.5+1 = 1.5 of 3: tie
            ("5.0", "300.0", ["Go on.", "hm", "And?", "get lost"], ["-3|-1", "-1", "1"]),  # 1+1 = 2 of 3
        ],
    )
    write_fixture(root, "valid", [("9.0", "100.0", ["Hi.", "yo", "What?", "fuck you"], ["-3", "-3", "-3"])])
    return root


def test_majority_rule_and_turns(convabuse_dir: Path) -> None:
    recs = {r["id"]: r for r in read_convabuse(convabuse_dir)}
    assert set(recs) == {"train-1", "train-2", "train-3", "train-4", "train-5", "valid-9"}
    assert [t["labels"] for t in recs["train-1"]["turns"]] == [[], [], [], ["abuse"]]
    assert recs["train-1"]["category"] == "abuse"
    assert recs["train-2"]["category"] == "benign"
    assert recs["train-3"]["category"] == "benign"  # tie is not abusive
    assert recs["train-4"]["category"] == "benign"  # repeated cell is one vote (mean 0.5): tie
    assert recs["train-5"]["category"] == "abuse"
    assert recs["valid-9"]["meta"]["original_split"] == "valid"


def test_empty_cells_skipped_and_labelled_turns(convabuse_dir: Path) -> None:
    rec = next(r for r in read_convabuse(convabuse_dir, ["train"]) if r["id"] == "train-3")
    assert [t["role"] for t in rec["turns"]] == ["assistant", "user"]
    assert rec["meta"]["labelled_turns"] == [1]
    assert rec["meta"]["conv_id_mangled"] is True
    assert rec["end_at"] is None and rec["source"] == "convabuse"
    # every record is schema-valid
    for r in read_convabuse(convabuse_dir):
        parse_conversation(r, require_labels=True)


def test_conv_id_normalised_and_summary(convabuse_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recs = list(read_convabuse(convabuse_dir, ["train"]))
    assert [r["meta"]["conv_id"] for r in recs][:2] == ["100", "100"]
    stats = summarize(convabuse_dir)
    assert stats["train"]["rows"] == 5 and stats["train"]["abusive"] == 2
    assert stats["valid"]["abusive"] == 1
    assert stats["train"]["mangled_conv_ids"] == 1 and stats["train"]["empty_turn_cells"] == 2
    assert stats["conv_ids_in_several_splits"] == 1
    assert main([str(convabuse_dir)]) == 0
    assert '"abusive": 2' in capsys.readouterr().out


def test_missing_file_is_clear(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 2


def test_a_truncated_row_is_a_clear_error_with_its_line(convabuse_dir: Path) -> None:
    file = convabuse_dir / "ConvAbuseEMNLPvalid.csv"
    file.write_text(file.read_text(encoding="utf-8") + "10.0,100.0\n", encoding="utf-8")
    with pytest.raises(ConvAbuseError, match=r"ConvAbuseEMNLPvalid.csv:3: row has 2 cells, no user"):
        list(read_convabuse(convabuse_dir, ["valid"]))
