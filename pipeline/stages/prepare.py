"""Stage `prepare`: validate, normalise, deduplicate, quarantine.

data/raw/conversations.jsonl -> data/prepared/conversations.jsonl (kept), data/prepared/rejected.jsonl (each:
file, line, field, reason, raw), data/prepared/duplicates.jsonl (each: id, duplicate_of, reason) and
metrics/prepare.json. Every non-blank raw line is counted once: read = kept + duplicates + rejected (asserted).

Decisions:
- Validation is serving.schema's. A record without `meta.labelled_turns` must be fully labelled
  (`require_labels=True`: category and every turn's labels). A record with it (ConvAbuse, feedback, unlabelled
  chat exports) is validated with `require_labels=False`, and `labelled_turns` must be a list of valid indices.
- Texts are normalised (pipeline/normalize.py) after validation; a turn that is empty after normalisation is a
  rejection; a turn longer than `prepare.max_turn_chars` is truncated and flagged in the turn's
  `meta.truncated` / `meta.original_chars`.
- Exact duplicates (same roles and normalised texts) keep the first; the later ones go to duplicates.jsonl.
  Copies made by `ingest` oversampling (`meta.oversample_of` = the kept original) are not duplicates.
- The same id with different content is quarantined (the first record wins): silently renaming would hide an
  upstream bug (two exports disagreeing), and the rejected line keeps everything needed to fix it.
- Near-duplicates (MinHash, `prepare.near_dup_threshold`) are kept but grouped: members of a cluster get
  `meta.near_dup_cluster` (the id of its first member) so `split` keeps each cluster in one split.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.common.cli import run_stage
from pipeline.common.config import CONFIG_DIR, ConfigError, section
from pipeline.common.jsonl import dumps_line, loads, paused_gc
from pipeline.data.config import PrepareConfig
from pipeline.data.dedup import MinHasher, UnionFind, content_hash, conversation_text, near_duplicates
from pipeline.data.normalize import normalize_turn_text
from pipeline.data.sources.base import INVALID_KEY
from serving.schema import RAW_KEEP_CHARS, LineProblem, SchemaError, json_lines, parse_conversation

log = logging.getLogger("pipeline.stages.prepare")

RAW_PATH = Path("data/raw/conversations.jsonl")
OUT_DIR = Path("data/prepared")
METRICS_PATH = Path("metrics/prepare.json")
#: The params this stage reads (dvc.yaml lists the same): configs/<file>.yaml sections.
PARAMS = {("data", "prepare"): PrepareConfig}


def prepare_params(profile: str | None = None, config_dir: Path = CONFIG_DIR) -> PrepareConfig:
    return section(PrepareConfig, "data", "prepare", profile, config_dir)


def validate(obj: Any) -> dict[str, Any]:
    """Schema-check one decoded record and return its normalised-later dict form; raises SchemaError."""
    meta = obj.get("meta") if isinstance(obj, dict) else None
    partial = isinstance(meta, dict) and "labelled_turns" in meta
    conv = parse_conversation(obj, require_labels=not partial)
    if partial:
        lt = meta["labelled_turns"]
        if not isinstance(lt, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in lt):
            raise SchemaError("meta.labelled_turns", "must be a list of turn indices")
        bad = [i for i in lt if not 0 <= i < len(conv.turns)]
        if bad:
            raise SchemaError("meta.labelled_turns", f"index {bad[0]} is outside the conversation")
        if conv.category is None:
            raise SchemaError("category", "missing")
    return conv.to_dict()


def normalise_record(rec: dict[str, Any], max_chars: int) -> int:
    """Normalise every turn's text in place; returns how many turns were truncated. Raises SchemaError."""
    truncated = 0
    for i, turn in enumerate(rec["turns"]):
        text, cut, original = normalize_turn_text(turn["text"], max_chars)
        if not text:
            raise SchemaError(f"turns[{i}].text", "empty after normalisation (only whitespace/control characters)")
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise SchemaError(f"turns[{i}].text", "contains an unpaired surrogate (not valid Unicode)") from None
        turn["text"] = text
        if cut:
            truncated += 1
            turn["meta"] = {**turn.get("meta", {}), "truncated": True, "original_chars": original}
    return truncated


class Preparer:
    """The records of one run: kept, quarantined (rejected) and exact duplicates, with their counts."""

    def __init__(self, raw_path: Path, params: PrepareConfig) -> None:
        self.raw_path, self.params = raw_path, params
        self.kept: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.duplicates: list[dict[str, Any]] = []
        self.by_hash: dict[str, int] = {}  # content hash -> index in kept
        self.by_id: dict[str, tuple[str, int]] = {}  # id -> (content hash, raw line)
        self.reasons: Counter[str] = Counter()
        self.read = self.truncated = self.label_conflicts = 0

    def reject(self, line: int, field: str, reason: str, raw: str, file: str | None = None, **extra: Any) -> None:
        row = {
            "file": file or str(self.raw_path),
            "line": line,
            "field": field,
            "reason": reason,
            "raw": raw[:RAW_KEEP_CHARS],
        }
        self.rejected.append({**row, **extra})
        self.reasons[reason.split(" (")[0].split(":")[0][:60]] += 1

    def take(self, lineno: int, text: str, obj: Any) -> None:
        """One decoded raw line: quarantined, a duplicate, or kept (validated and normalised)."""
        self.read += 1
        if isinstance(obj, LineProblem):
            self.reject(lineno, obj.field, obj.reason, obj.raw)
            return
        if isinstance(obj, dict) and INVALID_KEY in obj:  # what ingest could not read, with where and why
            inv = obj[INVALID_KEY] if isinstance(obj[INVALID_KEY], dict) else {}
            where = {"file": str(inv.get("file") or self.raw_path), "raw_line": lineno, "source": inv.get("source")}
            line, field = int(inv.get("line") or 0), str(inv.get("field", ""))
            self.reject(line, field, str(inv.get("reason", "invalid input")), str(inv.get("raw", "")), **where)
            return
        try:
            rec = validate(obj)
            self.truncated += normalise_record(rec, self.params.max_turn_chars)
        except SchemaError as exc:
            self.reject(lineno, exc.field, exc.message, text, id=obj.get("id") if isinstance(obj, dict) else None)
            return
        self._keep_unless_duplicate(lineno, text, rec)

    def _keep_unless_duplicate(self, lineno: int, text: str, rec: dict[str, Any]) -> None:
        h = content_hash([(t["role"], t["text"]) for t in rec["turns"]])
        rid = rec["id"]
        if rid in self.by_id and self.by_id[rid][0] != h:
            first_line = self.by_id[rid][1]
            reason = f"duplicate id {rid!r} with different content (first at line {first_line})"
            self.reject(lineno, "id", reason, text, id=rid)
            return
        holder = self.by_hash.get(h)
        if holder is not None:
            kept_rec = self.kept[holder]
            root = kept_rec["meta"].get("oversample_of") or kept_rec["id"]
            if rec["meta"].get("oversample_of") != root:  # ingest's oversampled copies are not duplicates
                conflict = [t["labels"] for t in rec["turns"]] != [t["labels"] for t in kept_rec["turns"]]
                self.label_conflicts += conflict
                reason = "exact duplicate" + (" with different labels" if conflict else "")
                self.duplicates.append(
                    {
                        "id": rid,
                        "duplicate_of": kept_rec["id"],
                        "line": lineno,
                        "source": rec["source"],
                        "reason": reason,
                    }
                )
                self.by_id.setdefault(rid, (h, lineno))
                return
        self.by_id[rid] = (h, lineno)
        self.by_hash.setdefault(h, len(self.kept))
        self.kept.append(rec)

    def cluster_near_duplicates(self) -> dict[str, int]:
        """Mark kept near-duplicates with `meta.near_dup_cluster` (its first member's id), for `split`."""
        p = self.params
        sig = MinHasher(p.minhash_num_perm, p.shingle_size).signatures(
            [conversation_text([(t["role"], t["text"]) for t in r["turns"]]) for r in self.kept]
        )
        nd = near_duplicates([], p.near_dup_threshold, signatures=sig)
        uf = UnionFind(len(self.kept))
        for i, j in nd.pairs.tolist():
            uf.union(i, j)
        roots = np.array([uf.find(i) for i in range(len(self.kept))], dtype=np.int64)
        sizes = np.bincount(roots, minlength=len(self.kept)) if len(self.kept) else np.zeros(0, np.int64)
        first_of: dict[int, str] = {}
        clustered = 0
        for i, rec in enumerate(self.kept):
            if sizes[int(roots[i])] > 1:
                rec["meta"]["near_dup_cluster"] = first_of.setdefault(int(roots[i]), rec["id"])
                clustered += 1
        return {
            "near_dup_pairs": int(len(nd.pairs)),
            "near_dup_clusters": len(first_of),
            "near_dup_conversations": clustered,
        }

    def metrics(self, blank: int, near: dict[str, int], seconds: float) -> dict[str, Any]:
        return {
            "read": self.read,
            "kept": len(self.kept),
            "duplicates": len(self.duplicates),
            "rejected": len(self.rejected),
            "blank_lines": blank,
            "duplicates_with_label_conflict": self.label_conflicts,
            "truncated_turns": self.truncated,
            **near,
            "rejected_by_reason": dict(sorted(self.reasons.items())),
            "kept_by_source": dict(sorted(Counter(r["source"] for r in self.kept).items())),
            "seconds": round(seconds, 3),
        }


@paused_gc()  # the cyclic GC is paused for the bulk load: see pipeline/common/jsonl.py
def run(
    raw_path: Path = RAW_PATH,
    out_dir: Path = OUT_DIR,
    metrics_path: Path = METRICS_PATH,
    config_dir: Path = CONFIG_DIR,
    profile: str | None = None,
) -> dict[str, Any]:
    """Run the stage (see the module doc)."""
    params = prepare_params(profile, config_dir)
    if not raw_path.exists():
        raise ConfigError(f"{raw_path} not found (run `python -m pipeline.stages.ingest` first)")
    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    prep = Preparer(raw_path, params)
    lines = 0
    with raw_path.open("rb") as fh:
        bar = tqdm(fh, desc="prepare", unit="line", mininterval=2, disable=None)
        for lineno, text, obj in json_lines(bar, str(raw_path), loads):
            lines = lineno
            prep.take(lineno, text, obj)
        lines = max(lines, bar.n)
    near = prep.cluster_near_duplicates()
    _write_jsonl(out_dir / "conversations.jsonl", prep.kept)
    _write_jsonl(out_dir / "rejected.jsonl", prep.rejected)
    _write_jsonl(out_dir / "duplicates.jsonl", prep.duplicates)
    assert prep.read == len(prep.kept) + len(prep.duplicates) + len(prep.rejected), "prepare lost records"
    metrics = prep.metrics(lines - prep.read, near, time.perf_counter() - t0)
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(
        f"prepare: read {prep.read} = kept {len(prep.kept)} + duplicates {len(prep.duplicates)} + rejected "
        f"{len(prep.rejected)} (truncated turns {prep.truncated}, near-duplicate clusters {near['near_dup_clusters']})"
    )
    return metrics


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as fh:
        for r in records:
            fh.write(dumps_line(r))
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=RAW_PATH)
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    ap.add_argument("--metrics", type=Path, default=METRICS_PATH)
    ap.add_argument("--config-dir", type=Path, default=CONFIG_DIR)
    ap.add_argument("--profile", default=None)
    args = ap.parse_args(argv)
    run(args.raw, args.out_dir, args.metrics, args.config_dir, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
