"""`python -m serving score`: the DESIGN.md JSONL contract, every input line accounted for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from serving.cli import main as cli_main
from serving.guard import Guard
from tests.serving_fixtures import PERSISTENT_TURNS, REPO_ROOT, sample_records


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

    guard = Guard.load(bundle)
    by_id = {r["id"]: r for r in sample_records()}
    for rec in records:
        assert list(rec)[:8] == ["id", "decision", "end_turn", "reason", "evidence", "degraded", "turns", "notes"]
        if "error" in rec:
            assert rec["decision"] == "continue" and rec["reason"] == "degraded" and rec["degraded"] is True
            assert set(rec["error"]) == {"file", "line", "field", "reason"} and rec["turns"] == []
            continue
        assert rec["decision"] in ("continue", "end")
        for i, t in enumerate(rec["turns"]):
            assert list(t) == ["index", "role", "action", "reason", "evidence", "scores", "degraded", "error"]
            assert t["index"] == i
        if rec["id"] in by_id:  # the CLI answers exactly what Guard.assess (and /v1/assess) answers
            turns = [(t["role"], t["text"]) for t in by_id[rec["id"]]["turns"]]
            assert rec == {**guard.assess(turns, conv_id=rec["id"]).to_dict(), "notes": []}
    assert records[3]["error"]["line"] == 4 and records[3]["id"] == "line-4" and records[6]["id"] == "bad-role"
    assert records[-2]["id"] == "17" and records[-1]["error"]["reason"].startswith("not valid UTF-8")
    ended = [r for r in records if r["decision"] == "end"]
    assert ended and all(r["end_turn"] is not None for r in ended)


def test_default_scores_are_those_of_live_scoring(bundle, tmp_path: Path) -> None:
    """Dynamic int8 quantisation scales activations per batch: the default (--batch-size 1) reproduces live
    scores exactly, however many conversations the file holds."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in sample_records()))
    assert cli_main(["score", "--bundle", str(bundle), "--input", str(inp), "--output", str(out)]) == 0
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


def test_messages_lines_and_lines_without_id_get_what_http_answers(bundle, guard, tmp_path: Path) -> None:
    """The chat-stack shape is read as over HTTP (serving/messages.py), a line without an id is named line-<n>,
    and every output line is the body /v1/assess answers for the same conversation."""
    from fastapi.testclient import TestClient

    from serving.http import Settings, create_app

    bodies = [
        {"messages": [{"role": "user", "content": "hi"}]},
        {
            "id": "m-1",
            "messages": [
                {"role": "system", "content": "be brief"},
                *[{"role": t["role"], "content": t["text"]} for t in PERSISTENT_TURNS],
            ],
        },
        {
            "id": 7,
            "messages": [
                {"role": "tool", "content": "42"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "x"}}],
                },
            ],
        },
        {"turns": PERSISTENT_TURNS},
    ]
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("\n" + "\n".join(json.dumps(b) for b in bodies) + "\n")  # a blank first line: ids count lines
    assert cli_main(["score", "--bundle", str(bundle), "--input", str(inp), "--output", str(out), "--no-progress"]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in lines] == ["line-2", "m-1", "7", "line-5"]
    client = TestClient(create_app(guard, Settings(feedback_path=str(tmp_path / "fb.jsonl"))))
    for line, body in zip(lines, bodies, strict=True):
        answer = client.post("/v1/assess", json=body).json()
        assert line == {**answer, "id": line["id"]}
    assert lines[1]["decision"] == lines[3]["decision"] == "end"
    assert [t["role"] for t in lines[2]["turns"]] == ["tool", "user"] and len(lines[2]["notes"]) == 2


def test_bad_and_mixed_lines_are_named(bundle, tmp_path: Path, capsys) -> None:
    lines = [
        {"turns": [{"role": "user", "text": "a"}], "messages": [{"role": "user", "content": "a"}]},
        {"messages": [{"role": "user", "text": "a"}]},
        {"turns": [{"role": "user", "content": "a"}]},
        {"messages": [{"role": "robot", "content": "a"}]},
        {"id": "", "turns": []},
        {"id": True, "turns": []},
        {"id": "empty", "turns": []},
    ]
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert cli_main(["score", "--bundle", str(bundle), "--input", str(inp), "--output", "-", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    records = [json.loads(x) for x in out.splitlines()]
    assert [r.get("error", {}).get("field") for r in records] == [
        "messages",
        "messages[0].content",
        "turns[0].text",
        "messages[0].role",
        "id",
        "id",
        None,
    ]
    assert "in.jsonl:1: messages: send either turns or messages, not both" in err
    assert "in.jsonl:4: messages[0].role: unknown role 'robot'" in err
    assert records[-1]["decision"] == "continue" and records[-1]["turns"] == []  # as HTTP: an empty chat


def _subparsers(parser) -> dict:
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_flag_has_help_and_shows_its_default() -> None:
    from serving.cli import build_parser

    for name, sub in _subparsers(build_parser()).items():
        text = sub.format_help()
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings}: no help"
            if action.default not in (None, False):
                shown = " ".join(map(str, action.default)) if isinstance(action.default, list) else action.default
                assert f"(default: {shown})" in " ".join(text.split()), f"{name} {action.option_strings}"
            elif action.default is None and action.option_strings and not action.required and name == "serve":
                assert "(default: serve." in action.help, f"{name} {action.option_strings}: where from?"


def test_bench_shows_progress_on_stderr(bundle, capsys) -> None:
    args = ["bench", "--bundle", str(bundle), "--models", "int8", "--tokens", "16", "--iterations", "3"]
    assert cli_main([*args, "--warmup", "1", "--cold-start-runs", "0"]) == 0
    out, err = capsys.readouterr()
    steps = [line for line in err.splitlines() if line.startswith("bench [")]
    assert steps and steps[0].startswith("bench [1/") and steps[-1].startswith(f"bench [{len(steps)}/{len(steps)}]")
    assert "onnx_int8: latency at ~16 tokens" in err and "engine" in out and "bench [" not in out


def test_progress_without_tqdm_prints_lines() -> None:
    import io

    from serving.progress import Bar

    stream = io.StringIO()
    bar = Bar(10, "scoring", "conv", stream=stream, every_s=0.0, plain=True)
    bar.update(4)
    bar.close()
    assert stream.getvalue().splitlines()[0].startswith("scoring: 4/10 conv (40%)")
