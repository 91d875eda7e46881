"""Splitting conversations: the rules that keep units together and held-out data out of train, and the
leakage check (see pipeline/stages/split.py for what they guarantee)."""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.common.config import ConfigError
from pipeline.data.config import SPLIT_NAMES as SPLITS
from pipeline.data.config import PartitionParams
from pipeline.data.dedup import MinHasher, UnionFind, content_hash, conversation_text, near_duplicates
from serving.schema import Conversation, Turn

RANK = {"train": 0, "valid": 1, "test": 2}


class LeakageError(Exception):
    """The splits share something they must not."""


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


def _unit(seed: int, *parts: object) -> float:
    digest = hashlib.blake2b("\x1f".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def fixed_split(rec: dict[str, Any], params: PartitionParams, group_split: dict[int, str]) -> str | None:
    """The split a record must go to by rule, or None when it is free for the stratified random split."""
    meta = rec["meta"]
    group = meta.get("template_group")
    if params.split.template_disjoint and isinstance(group, int) and not isinstance(group, bool):
        if group not in group_split:
            raise ConfigError(f"template_group {group} of {rec['id']} is not in data.split.template_groups")
        return group_split[group]
    if params.split.convabuse == "original" and meta.get("source_kind") == "convabuse" and meta.get("original_split"):
        if meta["original_split"] == "train":
            return "train"
        return "valid" if _unit(params.split.seed, "convabuse-half", meta.get("conv_id")) < 0.5 else "test"
    return None


def assign(records: Sequence[dict[str, Any]], params: PartitionParams) -> tuple[list[str | None], dict[str, int]]:
    """Split name per record (None = dropped for leakage) and counts of the conflict resolutions."""
    n = len(records)
    group_split = {g: name for name, gs in params.split.template_groups.items() for g in gs}
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
    fractions = params.split.fractions
    rng = random.Random(params.split.seed)
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


def signatures(records: Sequence[dict[str, Any]], params: PartitionParams) -> np.ndarray:
    docs = [conversation_text([(t["role"], t["text"]) for t in r["turns"]]) for r in records]
    return MinHasher(params.prepare.minhash_num_perm, params.prepare.shingle_size).signatures(docs)


def drop_train_near_copies(records: Sequence[dict[str, Any]], names: list[str | None], params: PartitionParams) -> int:
    """Drop train members of near-duplicate pairs across train and held-out that prepare's clusters missed
    (its candidate search is bounded in huge LSH buckets; this one is exhaustive across the two sides)."""
    idx = [i for i, n in enumerate(names) if n is not None]
    if not idx:
        return 0
    sig = signatures([records[i] for i in idx], params)
    side = np.array([names[i] == "train" for i in idx])
    nd = near_duplicates([], params.prepare.near_dup_threshold, side=side, signatures=sig)
    dropped = 0
    for a, b in nd.pairs.tolist():
        for k in (a, b):
            if names[idx[k]] == "train":
                names[idx[k]] = None
                dropped += 1
    return dropped


def leakage_check(splits: dict[str, list[dict[str, Any]]], params: PartitionParams) -> dict[str, Any]:
    """Counts of what train shares with valid/test (and valid with test); all must be zero."""
    result: dict[str, Any] = {}
    ids = {s: {r["id"] for r in recs} for s, recs in splits.items()}
    hashes = {
        s: {content_hash([(t["role"], t["text"]) for t in r["turns"]]) for r in recs} for s, recs in splits.items()
    }
    pairs = [("train", "valid"), ("train", "test"), ("valid", "test")]
    result["shared_ids"] = {f"{a}-{b}": len(ids[a] & ids[b]) for a, b in pairs}
    result["shared_content_hashes"] = {f"{a}-{b}": len(hashes[a] & hashes[b]) for a, b in pairs}
    if params.split.template_disjoint:

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
    nd = near_duplicates([], params.prepare.near_dup_threshold, side=side, signatures=sig)
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
