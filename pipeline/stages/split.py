"""Stage `split`: data/prepared/conversations.jsonl -> data/splits/{train,valid,test}.parquet + the data report.

By conversation, never by turn. Units that must stay in one split are joined first (union-find): copies made by
oversampling and their original, rows of one ConvAbuse `conv_id` (except ids mangled into scientific notation,
which merge unrelated conversations), members of one near-duplicate cluster
(`meta.near_dup_cluster` from prepare). Then:
- synthetic records (`meta.template_group`) with `split.template_disjoint`: by whole template group
  (`split.template_groups`, default 0-5 train, 6-7 valid, 8-9 test), so test templates are never seen in train;
  with `template_disjoint: false` they are split like any other source (a template-*sharing* split, for
  measuring the gap);
- ConvAbuse with `split.convabuse: original`: train = the authors' train split; valid and test = two halves of
  the authors' valid split by `conv_id` (seeded); with `random` it is split like any other source;
- everything else: stratified by category, random (seeded) at the unit level, to `split.fractions`.
When a unit spans splits (e.g. a ConvAbuse `conv_id` in the authors' train and valid), the held-out side wins:
the unit goes to the most held-out split among its members (test > valid > train) and members fixed to train are
dropped (counted as `dropped_for_leakage`), members fixed to valid move to test.

Then a leakage check that fails the stage (exit 1): no conversation id, no exact content hash, no near-duplicate
(MinHash, `prepare.near_dup_threshold`) and (when template-disjoint) no template family shared between train
and valid/test; ids and content hashes also not shared between valid and test.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.config import CONFIG_DIR, ConfigError, active_profile, load_config
from pipeline.common.jsonl import loads, paused_gc
from pipeline.data.dedup import MinHasher, UnionFind, content_hash, conversation_text, near_duplicates
from pipeline.data.report import write_report
from pipeline.data.split_files import SPLITS, split_path, write_split
from serving.schema import Conversation, Turn

log = logging.getLogger("pipeline.stages.split")

PREPARED_PATH = Path("data/prepared/conversations.jsonl")
SPLITS_DIR = Path("data/splits")
REPORT_PATH = Path("metrics/data_report.json")
PLOT_PATH = Path("plots/data_report.png")
CSV_PATH = Path("plots/data/split_counts.csv")
RANK = {"train": 0, "valid": 1, "test": 2}
DEFAULT_GROUPS = {"train": [0, 1, 2, 3, 4, 5], "valid": [6, 7], "test": [8, 9]}


class LeakageError(SystemExit):
    """The splits share something they must not: one line on stderr, exit status 1."""

    def __init__(self, message: str) -> None:
        import sys

        print(f"leakage check failed: {message}", file=sys.stderr)
        super().__init__(1)
        self.message = message


def to_conversation(rec: dict[str, Any]) -> Conversation:
    """A prepared record (already validated by `prepare`) as a Conversation, without re-validating every turn."""
    return Conversation(
        id=rec["id"],
        turns=tuple(Turn(t["role"], t["text"], tuple(t["labels"]), t.get("meta") or {}) for t in rec["turns"]),
        source=rec["source"],
        end_at=rec["end_at"],
        category=rec["category"],
        meta=rec["meta"],
    )


def split_params(profile: str | None, config_dir: Path) -> dict[str, Any]:
    data = load_config("data", profile, config_dir)
    s = {
        "seed": 13,
        "fractions": {"train": 0.7, "valid": 0.15, "test": 0.15},
        "template_disjoint": True,
        "template_groups": DEFAULT_GROUPS,
        "convabuse": "original",
        **(data.get("split") or {}),
    }
    fr = s["fractions"]
    if (
        not isinstance(fr, dict)
        or set(fr) != set(SPLITS)
        or any(not isinstance(v, int | float) or v < 0 for v in fr.values())
    ):
        raise ConfigError("data.split.fractions must map train, valid, test to numbers >= 0")
    if abs(sum(fr.values()) - 1.0) > 1e-6:
        raise ConfigError(f"data.split.fractions must sum to 1, got {sum(fr.values())}")
    groups = s["template_groups"]
    if not isinstance(groups, dict) or set(groups) != set(SPLITS):
        raise ConfigError("data.split.template_groups must map train, valid, test to lists of group numbers")
    seen: dict[int, str] = {}
    for name, gs in groups.items():
        for g in gs:
            if g in seen:
                raise ConfigError(f"data.split.template_groups: group {g} is in both {seen[g]} and {name}")
            seen[g] = name
    if s["convabuse"] not in ("original", "random"):
        raise ConfigError(f"data.split.convabuse must be original or random, got {s['convabuse']!r}")
    prep = data.get("prepare") or {}
    s["near_dup_threshold"] = float(prep.get("near_dup_threshold", 0.85))
    s["minhash_num_perm"] = int(prep.get("minhash_num_perm", 64))
    s["shingle_size"] = int(prep.get("shingle_size", 3))
    return s


def _unit(seed: int, *parts: object) -> float:
    digest = hashlib.blake2b("\x1f".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def fixed_split(rec: dict[str, Any], params: dict[str, Any], group_split: dict[int, str]) -> str | None:
    """The split a record must go to by rule, or None when it is free for the stratified random split."""
    meta = rec["meta"]
    group = meta.get("template_group")
    if params["template_disjoint"] and isinstance(group, int) and not isinstance(group, bool):
        if group not in group_split:
            raise ConfigError(f"template_group {group} of {rec['id']} is not in data.split.template_groups")
        return group_split[group]
    if params["convabuse"] == "original" and meta.get("source_kind") == "convabuse" and meta.get("original_split"):
        if meta["original_split"] == "train":
            return "train"
        return "valid" if _unit(params["seed"], "convabuse-half", meta.get("conv_id")) < 0.5 else "test"
    return None


def assign(records: Sequence[dict[str, Any]], params: dict[str, Any]) -> tuple[list[str | None], dict[str, int]]:
    """Split name per record (None = dropped for leakage) and counts of the conflict resolutions."""
    n = len(records)
    group_split = {g: name for name, gs in params["template_groups"].items() for g in gs}
    uf = UnionFind(n)
    first: dict[tuple[str, str], int] = {}
    for i, rec in enumerate(records):
        meta = rec["meta"]
        keys = [("id", meta.get("oversample_of") or rec["id"])]
        if meta.get("near_dup_cluster"):
            keys.append(("near", meta["near_dup_cluster"]))
        # mangled ids (scientific notation) merge unrelated conversations: not a grouping key
        if meta.get("source_kind") == "convabuse" and meta.get("conv_id") and not meta.get("conv_id_mangled"):
            keys.append(("conv", f"{rec['source']}:{meta['conv_id']}"))
        for key in keys:
            j = first.setdefault(key, i)
            if j != i:
                uf.union(i, j)
    components: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        components[uf.find(i)].append(i)
    fixed = [fixed_split(r, params, group_split) for r in records]
    out: list[str | None] = [None] * n
    stats = {"dropped_for_leakage": 0, "moved_valid_to_test": 0}
    free: dict[str, list[list[int]]] = defaultdict(list)
    for members in components.values():
        rules = {fixed[i] for i in members if fixed[i] is not None}
        if not rules:
            free[records[members[0]]["category"] or "none"].append(members)
            continue
        target = max(rules, key=RANK.__getitem__)
        for i in members:
            f = fixed[i]
            if f is None or f == target:
                out[i] = target
            elif f == "train":
                stats["dropped_for_leakage"] += 1
            else:  # valid member of a unit that also holds test members
                out[i] = target
                stats["moved_valid_to_test"] += 1
    # stratified random over the free units: each category's units are dealt to the split furthest below target
    fractions = params["fractions"]
    rng = random.Random(params["seed"])
    for category in sorted(free):
        units = sorted(free[category], key=lambda m: records[m[0]]["id"])
        rng.shuffle(units)
        total = sum(len(u) for u in units)
        have = dict.fromkeys(SPLITS, 0)
        for unit in units:
            # deficit relative to the target share after adding this unit; ties go to train first
            name = max(SPLITS, key=lambda s: (fractions[s] * total - have[s], -RANK[s]))
            have[name] += len(unit)
            for i in unit:
                out[i] = name
    return out, stats


def signatures(records: Sequence[dict[str, Any]], params: dict[str, Any]) -> np.ndarray:
    docs = [conversation_text([(t["role"], t["text"]) for t in r["turns"]]) for r in records]
    return MinHasher(params["minhash_num_perm"], params["shingle_size"]).signatures(docs)


def drop_train_near_copies(records: Sequence[dict[str, Any]], names: list[str | None], params: dict[str, Any]) -> int:
    """Drop train members of near-duplicate pairs across train and held-out that prepare's clusters missed
    (its candidate search is bounded in huge LSH buckets; this one is exhaustive across the two sides)."""
    idx = [i for i, n in enumerate(names) if n is not None]
    if not idx:
        return 0
    sig = signatures([records[i] for i in idx], params)
    side = np.array([names[i] == "train" for i in idx])
    nd = near_duplicates([], params["near_dup_threshold"], side=side, signatures=sig)
    dropped = 0
    for a, b in nd.pairs.tolist():
        for k in (a, b):
            if names[idx[k]] == "train":
                names[idx[k]] = None
                dropped += 1
    return dropped


def leakage_check(splits: dict[str, list[dict[str, Any]]], params: dict[str, Any]) -> dict[str, Any]:
    """Counts of what train shares with valid/test (and valid with test); all must be zero."""
    result: dict[str, Any] = {}
    ids = {s: {r["id"] for r in recs} for s, recs in splits.items()}
    hashes = {
        s: {content_hash([(t["role"], t["text"]) for t in r["turns"]]) for r in recs} for s, recs in splits.items()
    }
    pairs = [("train", "valid"), ("train", "test"), ("valid", "test")]
    result["shared_ids"] = {f"{a}-{b}": len(ids[a] & ids[b]) for a, b in pairs}
    result["shared_content_hashes"] = {f"{a}-{b}": len(hashes[a] & hashes[b]) for a, b in pairs}
    if params["template_disjoint"]:

        def families(recs: list[dict[str, Any]]) -> set[str]:
            fams: set[str] = set()
            for r in recs:
                if "template_group" not in r["meta"]:
                    continue
                for t in r["turns"]:
                    fam = (t.get("meta") or {}).get("family")
                    if fam:
                        fams.update(str(fam).split("+"))
            return fams

        fam = {s: families(recs) for s, recs in splits.items()}
        shared = (fam["train"] & fam["valid"]) | (fam["train"] & fam["test"])
        result["shared_template_families"] = len(shared)
        result["shared_template_families_examples"] = sorted(shared)[:10]
    # near-duplicates between train and held-out (exact bucket expansion across the two sides)
    train, held = splits["train"], splits["valid"] + splits["test"]
    sig = signatures(train + held, params)
    side = np.zeros(len(sig), bool)
    side[: len(train)] = True
    nd = near_duplicates([], params["near_dup_threshold"], side=side, signatures=sig)
    result["near_duplicates_train_heldout"] = int(len(nd.pairs))
    result["near_duplicate_examples"] = [
        [(train + held)[i]["id"], (train + held)[j]["id"], round(float(jac), 3)]
        for (i, j), jac in zip(nd.pairs[:5].tolist(), nd.jaccard[:5], strict=True)
    ]
    problems = [f"{k} {v}" for k, v in result["shared_ids"].items() if v] + [
        f"content {k} {v}" for k, v in result["shared_content_hashes"].items() if v
    ]
    if result.get("shared_template_families"):
        problems.append(
            f"{result['shared_template_families']} template families in train and held-out "
            f"(e.g. {', '.join(result['shared_template_families_examples'][:3])})"
        )
    if result["near_duplicates_train_heldout"]:
        problems.append(
            f"{result['near_duplicates_train_heldout']} near-duplicate train/held-out pairs "
            f"(e.g. {result['near_duplicate_examples'][0]})"
        )
    result["passed"] = not problems
    result["problems"] = problems
    return result


@paused_gc()  # the cyclic GC is paused for the bulk load: see pipeline/jsonl.py
def run(
    prepared_path: Path = PREPARED_PATH,
    splits_dir: Path = SPLITS_DIR,
    report_path: Path = REPORT_PATH,
    plot_path: Path | None = PLOT_PATH,
    csv_path: Path = CSV_PATH,
    config_dir: Path = CONFIG_DIR,
    profile: str | None = None,
) -> dict[str, Any]:
    """Run the stage (see the module doc)."""
    params = split_params(profile, config_dir)
    if not prepared_path.exists():
        raise ConfigError(f"{prepared_path} not found (run `python -m pipeline.stages.prepare` first)")
    t0 = time.perf_counter()
    with prepared_path.open("rb") as fh:
        records = [loads(line) for line in fh if line.strip()]
    names, stats = assign(records, params)
    extra_drops = drop_train_near_copies(records, names, params)
    stats["dropped_for_leakage"] += extra_drops
    stats["dropped_near_copies_found_by_split"] = extra_drops
    splits: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for rec, name in zip(records, names, strict=True):
        if name is not None:
            splits[name].append(rec)
    leakage = leakage_check(splits, params)
    for name in SPLITS:
        if not splits[name]:
            log.warning("split %s is empty", name)
    report = write_report(
        splits,
        report_path,
        plot_path,
        csv_path,
        extra={
            "profile": profile or active_profile(Path(config_dir)),
            "read": len(records),
            **stats,
            "leakage": leakage,
            "template_disjoint": params["template_disjoint"],
            "template_groups": params["template_groups"] if params["template_disjoint"] else None,
        },
    )
    if not leakage["passed"]:
        raise LeakageError("; ".join(leakage["problems"]))
    for name in SPLITS:
        write_split([to_conversation(r) for r in splits[name]], split_path(splits_dir, name))
    counts = {s: len(v) for s, v in splits.items()}
    assert sum(counts.values()) + stats["dropped_for_leakage"] == len(records), "split lost records"
    print(
        f"split: {len(records)} conversations -> "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f" (dropped for leakage {stats['dropped_for_leakage']}); leakage check passed"
        f" in {time.perf_counter() - t0:.1f}s"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", type=Path, default=PREPARED_PATH)
    ap.add_argument("--splits-dir", type=Path, default=SPLITS_DIR)
    ap.add_argument("--report", type=Path, default=REPORT_PATH)
    ap.add_argument("--plot", type=Path, default=PLOT_PATH)
    ap.add_argument("--csv", type=Path, default=CSV_PATH)
    ap.add_argument("--config-dir", type=Path, default=CONFIG_DIR)
    ap.add_argument("--profile", default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(args.prepared, args.splits_dir, args.report, args.plot, args.csv, args.config_dir, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
