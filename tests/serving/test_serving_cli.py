"""`python -m serving score`: the DESIGN.md JSONL contract, every input line accounted for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from serving.cli import main as cli_main
from serving.guard import Guard
from tests.serving_fixtures import REPO_ROOT, sample_records


def _write_input(path: Path) -> list[str]:
    lines = [json.dumps(r) for r in sample_records()]
    lines.insert(3, "{not json")
    lines.insert(5, "")  # blank lines are not records
    lines.insert(7, json.dumps({"id": "bad-role", "turns": [{"role": "robot", "text": "hi"}]}))
    lines.append(json.dumps({"id": 17, "turns": [{"role": "user", "text": "no labels needed to score"}]}))
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe broken utf8\n")
    return lines


def test_score_contract(bundle, tmp_path: Path, capsys) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = _write_input(inp)
    assert cli_main(["score", "--bundle", str(bundle), "--input", str(inp), "--output", str(out), "--chunk", "4"]) == 0
    err = capsys.readouterr().err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    non_blank = [line for line in lines if line.strip()] + ["<non-utf8>"]
    assert len(records) == len(non_blank)  # one output line per input record line, in order
    assert f":{4}: malformed JSON" in err and "turns[0].role: unknown role 'robot'" in err and "not valid UTF-8" in err
    assert "3 invalid lines" in err

    guard = Guard.load(bundle)  # batch 32, like the CLI default: int8 scores depend slightly on batch-mates
    by_id = {r["id"]: r for r in sample_records()}
    for rec in records:
        if "error" in rec:
            assert rec["decision"] == "continue" and rec["reason"] == "degraded" and rec["degraded"] is True
            assert set(rec["error"]) == {"file", "line", "field", "reason"}
            continue
        assert list(rec) == ["id", "decision", "end_turn", "reason", "turns", "degraded"]
        assert rec["decision"] in ("continue", "end")
        for i, t in enumerate(rec["turns"]):
            assert list(t) == ["index", "scores", "action"] and t["index"] == i
        if rec["id"] in by_id:  # the CLI decides exactly as Guard.assess
            turns = [(t["role"], t["text"]) for t in by_id[rec["id"]]["turns"]]
            expected = guard.assess(turns, conv_id=rec["id"]).to_record()
            assert [t["action"] for t in rec["turns"]] == [t["action"] for t in expected["turns"]]
            assert rec["reason"] == expected["reason"] and rec["end_turn"] == expected["end_turn"]
            for a, b in zip(rec["turns"], expected["turns"], strict=True):
                assert (a["scores"] is None) == (b["scores"] is None)
                assert all(abs(a["scores"][k] - b["scores"][k]) < 1e-3 for k in a["scores"] or {})
    assert records[3]["error"]["line"] == 4 and records[6]["id"] == "bad-role"
    assert records[-2]["id"] == "17" and records[-1]["error"]["reason"].startswith("not valid UTF-8")
    ended = [r for r in records if r["decision"] == "end"]
    assert ended and all(r["end_turn"] is not None for r in ended)


def test_batch_size_one_is_identical_to_live_scoring(bundle, tmp_path: Path) -> None:
    """Dynamic int8 quantisation scales activations per batch: --batch-size 1 reproduces live scores exactly."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in sample_records()))
    assert (
        cli_main(["score", "--bundle", str(bundle), "--input", str(inp), "--output", str(out), "--batch-size", "1"])
        == 0
    )
    guard = Guard.load(bundle)
    for rec, raw in zip((json.loads(x) for x in out.read_text().splitlines()), sample_records(), strict=True):
        state = guard.new_conversation()
        live = [guard.observe(state, t["role"], t["text"]) for t in raw["turns"]]
        assert [t["scores"] for t in rec["turns"]] == [None if r.scores is None else dict(r.scores) for r in live]
        assert [t["action"] for t in rec["turns"]] == [r.action for r in live]


def test_no_rescore_scores_with_the_int8_model_alone(bundle, tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in sample_records()))
    args = ["score", "--bundle", str(bundle), "--input", str(inp), "--output", str(out), "--batch-size", "1"]
    assert cli_main([*args, "--no-rescore", "--no-progress"]) == 0
    guard = Guard.load(bundle, rescore=False, batch_size=1)
    for rec, raw in zip((json.loads(x) for x in out.read_text().splitlines()), sample_records(), strict=True):
        want = guard.assess([(t["role"], t["text"]) for t in raw["turns"]])
        assert [t["scores"] for t in rec["turns"]] == [None if r.scores is None else dict(r.scores) for r in want.turns]


def test_score_strict_and_missing_input(bundle, tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    _write_input(inp)
    assert (
        cli_main(["score", "--bundle", str(bundle), "--input", str(inp), "--output", "-", "--strict", "--no-progress"])
        == 1
    )
    assert cli_main(["score", "--bundle", str(bundle), "--input", str(tmp_path / "nope"), "--output", "-"]) == 2


def test_python_m_serving_runs(bundle, tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text(json.dumps({"id": "a", "turns": [{"role": "user", "text": "hello"}]}) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "serving", "score", "--bundle", str(bundle), "--input", str(inp), "--output", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["id"] == "a"
