"""ingest -> prepare -> split on tmp dirs with configs written here: bad inputs, bad configs, weights, leakage."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.common.cli import run_stage
from pipeline.common.config import ConfigError
from pipeline.data.split_files import read_split
from pipeline.stages import ingest, prepare, split
from tests.pipeline.data.test_convabuse import write_fixture

REPO_CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def make_configs(tmp: Path, sources: list[dict[str, Any]], **overrides: Any) -> Path:
    cfg = tmp / "configs"
    cfg.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_CONFIGS / "policy.yaml", cfg / "policy.yaml")
    (cfg / "profile.yaml").write_text("profile: default\n")
    data = yaml.safe_load((REPO_CONFIGS / "data.yaml").read_text())
    data["ingest"] = {"sources": sources}
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value}
    (cfg / "data.yaml").write_text(yaml.safe_dump(data))
    return cfg


def run_ingest_prepare(tmp: Path, cfg: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    m1 = ingest.run(tmp / "raw.jsonl", tmp / "ingest.json", cfg, "default")
    m2 = prepare.run(tmp / "raw.jsonl", tmp / "prepared", tmp / "prepare.json", cfg, "default")
    return m1, m2


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def turn(role: str, text: str, labels: list[str] | None = None) -> dict[str, Any]:
    return {"role": role, "text": text, "labels": labels or []}


def good(cid: str, text: str = "hello there") -> dict[str, Any]:
    return {
        "id": cid,
        "category": "benign",
        "end_at": None,
        "turns": [turn("user", text), turn("assistant", "hi, how can I help?")],
    }


def test_prepare_quarantines_every_bad_input(tmp_path: Path) -> None:
    lines: list[bytes] = []

    def add(obj: Any) -> None:
        lines.append(json.dumps(obj, ensure_ascii=False).encode())

    add(good("ok-1"))
    lines.append(b'{"id": "broken", "turns": [')  # malformed JSON
    lines.append(b'{"id": "latin1", "turns": [{"role": "user", "text": "caf\xe9"}]}')  # not UTF-8
    add({"turns": [turn("user", "no id")], "category": "benign"})  # missing id
    add({"id": "no-turns", "category": "benign"})
    add({"id": "empty-turns", "category": "benign", "turns": []})
    add({"id": "empty-text", "category": "benign", "turns": [turn("user", "   ")]})
    add({"id": "no-category", "turns": [turn("user", "hey")]})
    add({"id": "no-labels", "category": "benign", "turns": [{"role": "user", "text": "hey"}]})
    add({"id": "bad-role", "category": "benign", "turns": [turn("moderator", "hey")]})
    add({"id": "bad-label", "category": "benign", "turns": [turn("user", "hey", ["rude"])]})
    add({"id": "wrong-role-label", "category": "benign", "turns": [turn("assistant", "no", ["abuse"])]})
    add(
        {
            "id": "end-at-assistant",
            "category": "benign",
            "end_at": 1,
            "turns": [turn("user", "a"), turn("assistant", "b")],
        }
    )
    add({"id": "end-past-end", "category": "benign", "end_at": 5, "turns": [turn("user", "a")]})
    add({"id": "only-controls", "category": "benign", "turns": [turn("user", "\x00\x01\x02")]})
    add({"id": "controls", "category": "benign", "turns": [turn("user", "he\x00llo\x07 there\x1b")]})
    add({"id": "huge", "category": "benign", "turns": [turn("user", "spam " * 2_000_000)]})  # 10 MB
    add(good("ok-1", "different content, same id"))  # duplicate id, different content
    add(good("ok-2"))  # same content as ok-1 under another id: exact duplicate
    add(good("ok-1"))  # the very same record again: exact duplicate
    lines.append(b"")  # blank lines are not records
    lines.append(b"[1, 2]")  # not an object
    raw = tmp_path / "raw.jsonl"
    raw.write_bytes(b"\n".join(lines) + b"\n")
    cfg = make_configs(
        tmp_path,
        [{"name": "s", "kind": "synthetic", "n_conversations": 1, "seed": 1}],
        prepare={"max_turn_chars": 1000},
    )
    t0 = time.perf_counter()
    m = prepare.run(raw, tmp_path / "prepared", tmp_path / "prepare.json", cfg, "default")
    elapsed = time.perf_counter() - t0
    assert m["read"] == len([x for x in lines if x]) == m["kept"] + m["duplicates"] + m["rejected"]
    kept = {r["id"]: r for r in read_jsonl(tmp_path / "prepared" / "conversations.jsonl")}
    assert set(kept) == {"ok-1", "controls", "huge"}
    assert kept["controls"]["turns"][0]["text"] == "hello there"
    huge = kept["huge"]["turns"][0]
    assert len(huge["text"]) <= 1000 and huge["meta"] == {"truncated": True, "original_chars": 10_000_000}
    assert elapsed < 20  # generous: a 10 MB turn must not take minutes (not a benchmark)
    rejected = read_jsonl(tmp_path / "prepared" / "rejected.jsonl")
    assert len(rejected) == m["rejected"] == 16
    by_field = {r["field"] for r in rejected}
    for field in (
        "id",
        "turns",
        "turns[0].text",
        "category",
        "turns[0].labels",
        "turns[0].role",
        "turns[0].labels[0]",
        "end_at",
    ):
        assert field in by_field, field
    reasons = " | ".join(r["reason"] for r in rejected)
    for needle in (
        "malformed JSON",
        "not valid UTF-8",
        "unknown role",
        "unknown label",
        "does not apply to role",
        "points at a assistant turn",
        "outside the conversation",
        "empty after normalisation",
        "duplicate id 'ok-1' with different content",
        "must be a JSON object",
    ):
        assert needle in reasons, needle
    for r in rejected:
        assert {"file", "line", "field", "reason", "raw"} <= set(r) and r["line"] >= 1
    dups = read_jsonl(tmp_path / "prepared" / "duplicates.jsonl")
    assert {d["id"] for d in dups} == {"ok-2", "ok-1"} and all(d["duplicate_of"] == "ok-1" for d in dups)


def test_empty_source_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    cfg = make_configs(tmp_path, [{"name": "chat", "kind": "chat_jsonl", "path": str(tmp_path / "empty.jsonl")}])
    m1, m2 = run_ingest_prepare(tmp_path, cfg)
    assert m1["written"] == 0 and m2["read"] == m2["kept"] == 0
    assert (tmp_path / "prepared" / "conversations.jsonl").read_text() == ""


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ({"name": "x", "kind": "reddit"}, "unknown source kind 'reddit'"),
        ({"name": "x", "kind": "chat_jsonl", "path": "/no/such/file.jsonl"}, "does not exist"),
        ({"name": "x", "kind": "synthetic", "seed": 1}, "missing key(s) n_conversations"),
        ({"name": "x", "kind": "synthetic", "n_conversations": 5, "seed": 1, "colour": "red"}, "unknown key(s) colour"),
        ({"name": "x", "kind": "synthetic", "n_conversations": 5, "seed": 1, "weight": 0}, "weight must be"),
    ],
)
def test_bad_config_stops_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: dict, needle: str
) -> None:
    cfg = make_configs(tmp_path, [source])
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        ingest.run(tmp_path / "raw.jsonl", tmp_path / "ingest.json", cfg, "default")
    args = ["--out", str(tmp_path / "raw.jsonl"), "--metrics", str(tmp_path / "i.json"), "--config-dir", str(cfg)]
    assert run_stage(ingest.main, [*args, "--profile", "default"]) == 2  # the script: one line, exit 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_invalid_lines_pass_through_ingest_and_are_quarantined(tmp_path: Path) -> None:
    chat = tmp_path / "chat.jsonl"
    chat.write_bytes(
        b'{"id": "a", "messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}]}\n'
        b"not json\n"
        b'{"id": "b", "messages": [{"role": "user", "content": "caf\xe9"}]}\n'
        b'{"id": "c", "messages": [{"role": "user", "content": "fine"}, {"role": "assistant", "content": "ok"}]}\n'
    )
    cfg = make_configs(tmp_path, [{"name": "chat", "kind": "chat_jsonl", "path": str(chat)}])
    m1, m2 = run_ingest_prepare(tmp_path, cfg)
    assert m1["sources"]["chat"]["read"] == 4 and m1["sources"]["chat"]["invalid"] == 2
    assert m2["read"] == 4 and m2["kept"] == 1 and m2["rejected"] == 3
    rejected = read_jsonl(tmp_path / "prepared" / "rejected.jsonl")
    assert {(Path(r["file"]).name, r["line"]) for r in rejected} >= {("chat.jsonl", 2), ("chat.jsonl", 3)}
    assert any("unknown role 'tool'" in r["reason"] for r in rejected)
    kept = read_jsonl(tmp_path / "prepared" / "conversations.jsonl")
    assert kept[0]["id"] == "chat/c" and kept[0]["meta"]["labelled_turns"] == []


def test_weights_subsample_and_oversample(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(
                json.dumps({"id": f"c{i}", "messages": [{"role": "user", "content": f"{name} message {i} " * 3}]})
                + "\n"
                for i in range(200)
            )
        )
    cfg = make_configs(
        tmp_path,
        [
            {"name": "half", "kind": "chat_jsonl", "path": str(tmp_path / "a.jsonl"), "weight": 0.5},
            {"name": "twice", "kind": "chat_jsonl", "path": str(tmp_path / "b.jsonl"), "weight": 2.0},
        ],
    )
    m1, m2 = run_ingest_prepare(tmp_path, cfg)
    half = m1["sources"]["half"]
    assert half["read"] == 200 and 60 < half["written"] < 140 and half["written"] + half["subsampled_out"] == 200
    assert m1["sources"]["twice"]["written"] == 400 and m1["sources"]["twice"]["oversampled_copies"] == 200
    # deterministic: the same subset again
    m1b = ingest.run(tmp_path / "raw2.jsonl", tmp_path / "ingest2.json", cfg, "default")
    assert (tmp_path / "raw2.jsonl").read_bytes() == (tmp_path / "raw.jsonl").read_bytes()
    assert m1b["written"] == m1["written"]
    # oversampled copies are kept, not deduplicated
    assert m2["kept"] == half["written"] + 400 and m2["duplicates"] == 0
    kept = read_jsonl(tmp_path / "prepared" / "conversations.jsonl")
    copies = [r for r in kept if r["meta"].get("oversample_of")]
    assert len(copies) == 200 and all(r["id"].endswith("~1") for r in copies)
    # copies stay with their original in one split
    split.run(
        tmp_path / "prepared" / "conversations.jsonl",
        tmp_path / "splits",
        tmp_path / "report.json",
        None,
        tmp_path / "counts.csv",
        cfg,
        "default",
    )
    where = {}
    for name in ("train", "valid", "test"):
        for c in read_split(tmp_path / "splits" / f"{name}.parquet"):
            where[c.id] = name
    assert all(where[r["id"]] == where[r["meta"]["oversample_of"]] for r in copies)


def test_synthetic_end_to_end_template_disjoint(tmp_path: Path) -> None:
    cfg = make_configs(tmp_path, [{"name": "synthetic", "kind": "synthetic", "n_conversations": 300, "seed": 5}])
    m1, m2 = run_ingest_prepare(tmp_path, cfg)
    assert m1["written"] == 300 and m2["read"] == 300
    report = split.run(
        tmp_path / "prepared" / "conversations.jsonl",
        tmp_path / "splits",
        tmp_path / "report.json",
        tmp_path / "report.png",
        tmp_path / "counts.csv",
        cfg,
        "default",
    )
    assert report["leakage"]["passed"] and report["leakage"]["shared_template_families"] == 0
    groups = {"train": set(range(6)), "valid": {6, 7}, "test": {8, 9}}
    total = 0
    for name, allowed in groups.items():
        convs = read_split(tmp_path / "splits" / f"{name}.parquet")
        total += len(convs)
        assert convs and {c.meta["template_group"] for c in convs} <= allowed
    assert total + report["dropped_for_leakage"] == m2["kept"]
    assert (tmp_path / "report.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "report.json").read_text())
    assert set(saved["splits"]) == {"train", "valid", "test"} and saved["splits"]["train"]["labels"]
    assert (tmp_path / "counts.csv").read_text().startswith("split_category,split,category,conversations")


def test_near_copy_of_heldout_never_in_train(tmp_path: Path) -> None:
    """A train-group synthetic conversation that nearly copies a test-group one is dropped from train."""
    cfg = make_configs(tmp_path, [{"name": "s", "kind": "synthetic", "n_conversations": 1, "seed": 1}])
    long_text = " ".join(f"word{i}" for i in range(60))

    def rec(cid: str, group: int, text: str) -> dict[str, Any]:
        return {
            "id": cid,
            "source": "synthetic",
            "category": "benign",
            "end_at": None,
            "turns": [turn("user", text)],
            "meta": {"template_group": group, "source_kind": "synthetic"},
        }

    records = [
        rec("t1", 8, long_text),
        rec("tr1", 0, long_text + " extra"),
        rec("tr2", 1, "something else"),
        rec("v1", 7, "valid text here"),
    ]
    prepared = tmp_path / "prepared.jsonl"
    prepared.write_text("".join(json.dumps(r) + "\n" for r in records))
    report = split.run(
        prepared, tmp_path / "splits", tmp_path / "report.json", None, tmp_path / "c.csv", cfg, "default"
    )
    assert report["dropped_for_leakage"] == 1 and report["leakage"]["passed"]
    assert [c.id for c in read_split(tmp_path / "splits" / "train.parquet")] == ["tr2"]


def test_leakage_check_fails_the_stage() -> None:
    params = split.split_params("default", REPO_CONFIGS)

    def rec(cid: str, text: str, family: str) -> dict[str, Any]:
        return {
            "id": cid,
            "source": "synthetic",
            "category": "benign",
            "end_at": None,
            "turns": [{"role": "user", "text": text, "labels": [], "meta": {"family": family}}],
            "meta": {"template_group": 0},
        }

    splits = {
        "train": [rec("a", "one two three four five six", "fam/x")],
        "valid": [rec("a", "one two three four five six!", "fam/x")],
        "test": [],
    }
    result = split.leakage_check(splits, params)
    assert not result["passed"]
    assert result["shared_ids"]["train-valid"] == 1 and result["shared_template_families"] == 1
    assert result["near_duplicates_train_heldout"] == 1
    assert "near-duplicate train/held-out pairs" in "; ".join(result["problems"])


def test_convabuse_original_split(tmp_path: Path) -> None:
    root = tmp_path / "convabuse"
    rows_train = [
        (
            f"{i}.0",
            f"{100 + i % 7}.0",
            ["Go on.", f"first {i}", "Tell me more.", f"user says {i} things"],
            ["-1", "-1", "1"] if i % 4 == 0 else ["1", "1", "0"],
        )
        for i in range(40)
    ]
    rows_valid = [
        (
            f"{500 + i}.0",
            f"{900 + i % 5}.0",
            ["Hi.", f"start {i}", "What?", f"valid user {i} words"],
            ["-2", "-2", "1"] if i % 3 == 0 else ["1", "1", "1"],
        )
        for i in range(20)
    ]
    rows_valid.append(("999.0", "100.0", ["Hi.", "shared conv", "What?", "shared conv id row"], ["1", "1", "1"]))
    write_fixture(root, "train", rows_train)
    write_fixture(root, "valid", rows_valid)
    cfg = make_configs(tmp_path, [{"name": "convabuse", "kind": "convabuse", "path": str(root)}])
    m1, m2 = run_ingest_prepare(tmp_path, cfg)
    assert m1["written"] == 61 and m2["kept"] == 61
    report = split.run(
        tmp_path / "prepared" / "conversations.jsonl",
        tmp_path / "splits",
        tmp_path / "r.json",
        None,
        tmp_path / "c.csv",
        cfg,
        "default",
    )
    train = read_split(tmp_path / "splits" / "train.parquet")
    held = read_split(tmp_path / "splits" / "valid.parquet") + read_split(tmp_path / "splits" / "test.parquet")
    assert {c.meta["original_split"] for c in train} == {"train"}
    assert {c.meta["original_split"] for c in held} == {"valid"} and len(held) == 21
    # conv_id 100 is in both authors' splits: its train rows are dropped, the held-out side wins
    assert "100" not in {c.meta["conv_id"] for c in train}
    assert report["dropped_for_leakage"] == len([r for r in rows_train if r[1] == "100.0"])
    labelled = [c for c in train if c.category == "abuse"]
    assert labelled and all(c.turns[-1].labels == ("abuse",) for c in labelled)


def test_training_imports_without_datasets() -> None:
    """`train` reads splits with pyarrow alone, so it runs on an image without 🤗 datasets (a bare GPU box)."""
    code = "import sys, pipeline.stages.train, pipeline.data.split_files; sys.exit('datasets' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[3], timeout=120)
    assert proc.returncode == 0, "importing pipeline.stages.train pulled in datasets"
