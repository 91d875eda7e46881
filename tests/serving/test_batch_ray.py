"""`python -m serving batch`: the `score` answers, line for line, from a 2-worker local Ray cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from serving.batch_ray import score_dataset  # noqa: E402
from serving.cli import main as cli_main  # noqa: E402
from tests.serving_fixtures import PERSISTENT_TURNS, sample_records  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """One local 2-CPU cluster for the module (start-up is most of the cost); shut down after."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _records() -> list[dict]:
    """20 conversations: the labelled samples, the chat-stack shape (system and tool messages, no id) and more."""
    recs = sample_records()
    messages = [{"role": t["role"], "content": t["text"]} for t in PERSISTENT_TURNS]
    recs.append({"id": "m-1", "messages": [{"role": "system", "content": "be brief"}, *messages]})
    recs.append({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "{}"}]})
    for k in range(6):
        recs.append({"id": 100 + k, "turns": [{**t, "text": f"{t['text']} {k}"} for t in PERSISTENT_TURNS]})
    return recs


def _write_jsonl(path: Path) -> int:
    """The records with malformed lines among them (bad JSON, a bad role, a blank line, bad UTF-8)."""
    lines = [json.dumps(r) for r in _records()]
    lines.insert(2, "{not json")
    lines.insert(5, "")
    lines.insert(9, json.dumps({"id": "bad-role", "turns": [{"role": "robot", "text": "hi"}]}))
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe broken utf8\n")
    return sum(1 for line in lines if line.strip()) + 1


def _score_cli(bundle: str, inp: Path, out: Path) -> list[str]:
    assert cli_main(["score", "--bundle", str(bundle), "--input", str(inp), "--output", str(out), "--no-progress"]) == 0
    return out.read_text().splitlines()


def test_batch_jsonl_answers_as_score_does(bundle, local_ray, tmp_path: Path, capsys) -> None:
    inp = tmp_path / "in.jsonl"
    n = _write_jsonl(inp)
    want = _score_cli(bundle, inp, tmp_path / "cli.jsonl")
    out = tmp_path / "batch.jsonl"
    assert cli_main(["batch", "--bundle", str(bundle), "--input", str(inp), "--output", str(out), "--chunk", "3"]) == 0
    got = out.read_text().splitlines()
    assert got == want and len(got) == n  # byte for byte, in input order, every record accounted for
    err = capsys.readouterr().err
    assert f"{n} records in, {n} lines out: {n - 3} conversations scored" in err and "3 invalid records" in err
    assert "conversations/s" in err and "turns/s" in err and "malformed JSON" in err
    answers = [json.loads(line) for line in got]
    assert sum("error" in a for a in answers) == 3 and any(a["decision"] == "end" for a in answers)
    assert any(a["id"].startswith("line-") and "error" not in a for a in answers)  # no id: named line-<n>


def test_batch_parquet_answers_as_score_does_on_the_same_records(bundle, local_ray, tmp_path: Path) -> None:
    """A Parquet of `id` and `turns` (our split files' schema: labels, meta as JSON text) answers as the same
    records sent to `score` as JSONL; a bad row is an error record naming row n as line n."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"id": r["id"], "turns": [{**t, "meta": json.dumps({"k": i})} for i, t in enumerate(r["turns"])]}
        for r in sample_records()
    ]
    rows.insert(4, {"id": "bad-role", "turns": [{"role": "robot", "text": "hi", "labels": [], "meta": "{}"}]})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    jsonl = tmp_path / "in.jsonl"
    decoded = [{"id": r["id"], "turns": [{**t, "meta": json.loads(t["meta"])} for t in r["turns"]]} for r in rows]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in decoded))
    want = [json.loads(line) for line in _score_cli(bundle, jsonl, tmp_path / "cli.jsonl")]

    summary = score_dataset(tmp_path / "in.parquet", tmp_path / "batch.jsonl", bundle, workers=2, batch_size=4)
    got = [json.loads(line) for line in (tmp_path / "batch.jsonl").read_text().splitlines()]
    for g, w in zip(got, want, strict=True):
        if "error" in w:  # the same error, but from the Parquet file
            assert g["error"] == {**w["error"], "file": str(tmp_path / "in.parquet")}
            g, w = {**g, "error": None}, {**w, "error": None}
        assert g == w
    assert (summary.lines, summary.written, summary.invalid) == (len(rows), len(rows), 1)
    assert summary.turns == sum(len(r["turns"]) for r in rows if r["id"] != "bad-role")
    assert got[4]["error"]["line"] == 5 and got[4]["error"]["field"] == "turns[0].role"
