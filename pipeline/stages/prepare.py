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
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.common.config import CONFIG_DIR, ConfigError, load_config
from pipeline.common.jsonl import dumps_line, loads, paused_gc
from pipeline.data.dedup import MinHasher, UnionFind, content_hash, conversation_text, near_duplicates
from pipeline.data.normalize import normalize_turn_text
from pipeline.data.sources.base import INVALID_KEY
from serving.schema import RAW_KEEP_CHARS, SchemaError, parse_conversation

log = logging.getLogger("pipeline.stages.prepare")

RAW_PATH = Path("data/raw/conversations.jsonl")
OUT_DIR = Path("data/prepared")
METRICS_PATH = Path("metrics/prepare.json")


def prepare_params(profile: str | None = None, config_dir: Path = CONFIG_DIR) -> dict[str, Any]:
    p = load_config("data", profile, config_dir).get("prepare") or {}
    defaults = {"max_turn_chars": 4000, "near_dup_threshold": 0.85, "minhash_num_perm": 64, "shingle_size": 3}
    out = {**defaults, **p}
    if not isinstance(out["max_turn_chars"], int) or out["max_turn_chars"] < 1:
        raise ConfigError(f"data.prepare.max_turn_chars must be a positive integer, got {out['max_turn_chars']!r}")
    if not 0 < float(out["near_dup_threshold"]) <= 1:
        raise ConfigError(f"data.prepare.near_dup_threshold must be in (0, 1], got {out['near_dup_threshold']!r}")
    for key in ("minhash_num_perm", "shingle_size"):
        if not isinstance(out[key], int) or out[key] < 1:
            raise ConfigError(f"data.prepare.{key} must be a positive integer, got {out[key]!r}")
    return out


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


@paused_gc()  # the cyclic GC is paused for the bulk load: see pipeline/jsonl.py
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
    kept: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    by_hash: dict[str, int] = {}  # content hash -> index in kept
    by_id: dict[str, tuple[str, int]] = {}  # id -> (content hash, raw line)
    reasons: Counter[str] = Counter()
    read = blank = truncated = label_conflicts = 0
    max_chars = int(params["max_turn_chars"])

    def reject(line: int, field: str, reason: str, raw: str, file: str | None = None, **extra: Any) -> None:
        rejected.append(
            {
                "file": file or str(raw_path),
                "line": line,
                "field": field,
                "reason": reason,
                "raw": raw[:RAW_KEEP_CHARS],
                **extra,
            }
        )
        reasons[reason.split(" (")[0].split(":")[0][:60]] += 1

    with raw_path.open("rb") as fh:
        for lineno, raw_bytes in enumerate(tqdm(fh, desc="prepare", unit="line", mininterval=2, disable=None), 1):
            stripped = raw_bytes.strip()
            if not stripped:
                blank += 1
                continue
            read += 1
            try:
                text = stripped.decode("utf-8")
            except UnicodeDecodeError as exc:
                reject(
                    lineno,
                    "",
                    f"not valid UTF-8 ({exc.reason} at byte {exc.start})",
                    stripped[:RAW_KEEP_CHARS].decode("utf-8", "replace"),
                )
                continue
            try:
                obj = loads(stripped)
            except json.JSONDecodeError as exc:
                reject(lineno, "", f"malformed JSON: {exc.msg} (column {exc.colno})", text)
                continue
            if isinstance(obj, dict) and INVALID_KEY in obj:
                inv = obj[INVALID_KEY] if isinstance(obj[INVALID_KEY], dict) else {}
                reject(
                    int(inv.get("line") or 0),
                    str(inv.get("field", "")),
                    str(inv.get("reason", "invalid input")),
                    str(inv.get("raw", "")),
                    file=str(inv.get("file") or raw_path),
                    raw_line=lineno,
                    source=inv.get("source"),
                )
                continue
            try:
                rec = validate(obj)
                truncated += normalise_record(rec, max_chars)
            except SchemaError as exc:
                reject(lineno, exc.field, exc.message, text, id=obj.get("id") if isinstance(obj, dict) else None)
                continue
            h = content_hash([(t["role"], t["text"]) for t in rec["turns"]])
            rid = rec["id"]
            if rid in by_id:
                first_hash, first_line = by_id[rid]
                if first_hash != h:
                    reject(
                        lineno,
                        "id",
                        f"duplicate id {rid!r} with different content (first at line {first_line})",
                        text,
                        id=rid,
                    )
                    continue
            holder = by_hash.get(h)
            if holder is not None:
                kept_rec = kept[holder]
                root = kept_rec["meta"].get("oversample_of") or kept_rec["id"]
                if rec["meta"].get("oversample_of") != root:
                    conflict = [t["labels"] for t in rec["turns"]] != [t["labels"] for t in kept_rec["turns"]]
                    label_conflicts += conflict
                    duplicates.append(
                        {
                            "id": rid,
                            "duplicate_of": kept_rec["id"],
                            "line": lineno,
                            "source": rec["source"],
                            "reason": "exact duplicate" + (" with different labels" if conflict else ""),
                        }
                    )
                    by_id.setdefault(rid, (h, lineno))
                    continue
            by_id[rid] = (h, lineno)
            by_hash.setdefault(h, len(kept))
            kept.append(rec)

    # near-duplicate clusters among the kept records
    sig = MinHasher(int(params["minhash_num_perm"]), int(params["shingle_size"])).signatures(
        [conversation_text([(t["role"], t["text"]) for t in r["turns"]]) for r in kept]
    )
    nd = near_duplicates([], float(params["near_dup_threshold"]), signatures=sig)
    uf = UnionFind(len(kept))
    for i, j in nd.pairs.tolist():
        uf.union(i, j)
    roots = np.array([uf.find(i) for i in range(len(kept))], dtype=np.int64)
    sizes = np.bincount(roots, minlength=len(kept)) if len(kept) else np.zeros(0, np.int64)
    first_of: dict[int, str] = {}
    clustered = 0
    for i, rec in enumerate(kept):
        r = int(roots[i])
        if sizes[r] > 1:
            rec["meta"]["near_dup_cluster"] = first_of.setdefault(r, rec["id"])
            clustered += 1

    _write_jsonl(out_dir / "conversations.jsonl", kept)
    _write_jsonl(out_dir / "rejected.jsonl", rejected)
    _write_jsonl(out_dir / "duplicates.jsonl", duplicates)

    assert read == len(kept) + len(duplicates) + len(rejected), "prepare lost records"
    metrics = {
        "read": read,
        "kept": len(kept),
        "duplicates": len(duplicates),
        "rejected": len(rejected),
        "blank_lines": blank,
        "duplicates_with_label_conflict": label_conflicts,
        "truncated_turns": truncated,
        "near_dup_pairs": int(len(nd.pairs)),
        "near_dup_clusters": len(first_of),
        "near_dup_conversations": clustered,
        "rejected_by_reason": dict(sorted(reasons.items())),
        "kept_by_source": dict(sorted(Counter(r["source"] for r in kept).items())),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(
        f"prepare: read {read} = kept {len(kept)} + duplicates {len(duplicates)} + rejected {len(rejected)}"
        f" (truncated turns {truncated}, near-duplicate clusters {len(first_of)})"
    )
    return metrics


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as fh:
        for r in records:
            fh.write(dumps_line(r))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=RAW_PATH)
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    ap.add_argument("--metrics", type=Path, default=METRICS_PATH)
    ap.add_argument("--config-dir", type=Path, default=CONFIG_DIR)
    ap.add_argument("--profile", default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(args.raw, args.out_dir, args.metrics, args.config_dir, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
