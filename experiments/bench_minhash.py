"""MinHash + LSH near-duplicate search: pipeline/dedup.py against rensa and datasketch.

    python experiments/bench_minhash.py --prepared DIR/prepared/conversations.jsonl --repeat 3 --json out.json

DIR comes from `python -m pipeline.bench_data --n 100000 --no-plot --keep DIR` (without --prepared the script runs
ingest + prepare itself, untimed, in a temporary folder). Texts are `conversation_text` of prepare's kept records,
exactly what prepare and split hand to MinHash. For each implementation it times, on those documents:

  sig    texts -> signatures (including tokenising / shingling, which the libraries need done in Python)
  self   all near-duplicate pairs at the threshold (prepare's clustering): LSH candidates + Jaccard-estimate check
  cross  pairs across train and held-out only (split's leakage check; train = template groups 0-5 as in
         configs/data.yaml)

Quality: exact Jaccard of word 3-shingle sets (same tokenisation as pipeline/dedup.py) on a sample of random
conversations, every conversation any implementation paired on the full set, and planted near-copies (a word
substituted, deleted or inserted, two words substituted, or only case/punctuation changed). Recall and precision
of the pairs with exact J >= threshold, averaged over five seeds. On the full set, precision of every pair
found is checked exactly too.

Estimator error: estimated minus exact Jaccard (bias, RMSE) over the sample's pairs with exact J >= 0.5, split by
whether both documents have fewer shingles than signature slots.

A command, not a test: timings depend on the machine and whatever else runs on it.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.data.dedup import (  # noqa: E402
    MinHasher,
    conversation_text,
    estimated_jaccard,
    lsh_params,
    near_duplicates,
    shingle_hashes,
)

TRAIN_GROUPS = {0, 1, 2, 3, 4, 5}

# --------------------------------------------------------------------------------------------- documents


def load_docs(prepared: Path, n: int) -> tuple[list[str], np.ndarray]:
    """(conversation texts, train-side flag) of the first n kept records."""
    docs, side = [], []
    with prepared.open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            r = json.loads(line)
            docs.append(conversation_text([(t["role"], t["text"]) for t in r["turns"]]))
            side.append(r["meta"].get("template_group") in TRAIN_GROUPS)
            if len(docs) >= n:
                break
    return docs, np.array(side, bool)


def build_prepared(n: int, tmp: Path) -> Path:
    import shutil

    import yaml

    from pipeline.common.config import CONFIG_DIR, load_config
    from pipeline.stages import ingest, prepare

    cfg = tmp / "configs"
    shutil.copytree(CONFIG_DIR, cfg)
    data = load_config("data", "default", CONFIG_DIR)
    data["ingest"]["sources"] = [
        {"name": "synthetic", "kind": "synthetic", "weight": 1.0, "n_conversations": n, "seed": 13}
    ]
    (cfg / "data.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    (cfg / "profile.yaml").write_text("profile: default\n", encoding="utf-8")
    ingest.run(tmp / "raw.jsonl", tmp / "ingest.json", cfg, "default")
    prepare.run(tmp / "raw.jsonl", tmp / "prepared", tmp / "prepare.json", cfg, "default")
    return tmp / "prepared" / "conversations.jsonl"


# Same words as pipeline/dedup.py: runs of ASCII letters/digits/underscore or non-ASCII characters, lowercased.
_WORD = re.compile(r"[a-z0-9_\u0080-\U0010ffff]+")


def shingles(doc: str, k: int = 3) -> list[str]:
    """Word k-shingles as strings (a short document: one shingle of all its words; an empty one: "")."""
    w = _WORD.findall(doc.lower())
    if len(w) < k:
        return [" ".join(w)]
    return [" ".join(w[i : i + k]) for i in range(len(w) - k + 1)]


# --------------------------------------------------------------------------------------------- implementations
# Each returns a function docs, side -> timings and pairs: {"sig": s, "self": s, "cross": s}, self pairs, cross
# pairs (int64 [m, 2], i < j, verified by the implementation's own Jaccard estimate >= threshold).


def _pairs_from_lists(cands: Sequence[Sequence[int]], offset: int = 0, cross: bool = False) -> np.ndarray:
    """Candidate key lists (one per query) -> unique [m, 2] pairs i < j."""
    rows = []
    for q, keys in enumerate(cands):
        qi = q + offset
        for k in keys:
            if cross:
                rows.append((k, qi))
            elif k > qi:
                rows.append((qi, k))
    if not rows:
        return np.zeros((0, 2), np.int64)
    p = np.unique(np.array(rows, np.int64), axis=0)
    return p


def _verify(sig: np.ndarray, pairs: np.ndarray, threshold: float) -> np.ndarray:
    return pairs[estimated_jaccard(sig, pairs) >= threshold] if len(pairs) else pairs


def run_ours(docs, side, threshold, num_perm, k, seed):
    t0 = time.perf_counter()
    sig = MinHasher(num_perm, k, seed).signatures(docs)
    t1 = time.perf_counter()
    self_pairs = near_duplicates([], threshold, signatures=sig).pairs
    t2 = time.perf_counter()
    cross_pairs = near_duplicates([], threshold, side=side, signatures=sig).pairs
    t3 = time.perf_counter()
    return {"sig": t1 - t0, "self": t2 - t1, "cross": t3 - t2}, self_pairs, cross_pairs


def run_rensa(docs, side, threshold, num_perm, k, seed):
    """Pure rensa: Python shingling, RMinHash.from_token_sets, RMinHashLSH, RMinHash.jaccard to verify."""
    import rensa

    bands = lsh_params(threshold, num_perm)[0]
    while num_perm % bands:  # rensa needs rows = num_perm / bands exactly
        bands += 1
    t0 = time.perf_counter()
    mh = rensa.RMinHash.from_token_sets([shingles(d, k) for d in docs], num_perm, seed)
    t1 = time.perf_counter()
    lsh = rensa.RMinHashLSH(threshold, num_perm, bands)
    lsh.insert_many(mh)
    cand = _pairs_from_lists(lsh.query_all(mh))
    self_pairs = np.array([(i, j) for i, j in cand.tolist() if mh[i].jaccard(mh[j]) >= threshold], np.int64).reshape(
        -1, 2
    )
    t2 = time.perf_counter()
    tr = np.flatnonzero(side)
    ho = np.flatnonzero(~side)
    lsh = rensa.RMinHashLSH(threshold, num_perm, bands)
    lsh.insert_many([mh[i] for i in tr])
    c = lsh.query_all([mh[i] for i in ho])
    rows = [(int(tr[a]), int(ho[q])) for q, keys in enumerate(c) for a in keys]
    cross_pairs = np.array(
        [tuple(sorted(p)) for p in rows if mh[p[0]].jaccard(mh[p[1]]) >= threshold], np.int64
    ).reshape(-1, 2)
    t3 = time.perf_counter()
    return {"sig": t1 - t0, "self": t2 - t1, "cross": t3 - t2}, self_pairs, cross_pairs


def run_rensa_sig(docs, side, threshold, num_perm, k, seed):
    """Hybrid: our numpy shingle hashes -> rensa digest matrix (flat buffer + offsets) -> our LSH + check."""
    import rensa

    t0 = time.perf_counter()
    sh, offsets = shingle_hashes(docs, k)
    m = rensa.RMinHash.digest_matrix_from_flat_token_hashes(sh, offsets.astype(np.uint64), num_perm, seed)
    sig = np.array(m.to_rows(), np.uint32)
    t1 = time.perf_counter()
    self_pairs = near_duplicates([], threshold, signatures=sig).pairs
    t2 = time.perf_counter()
    cross_pairs = near_duplicates([], threshold, side=side, signatures=sig).pairs
    t3 = time.perf_counter()
    return {"sig": t1 - t0, "self": t2 - t1, "cross": t3 - t2}, self_pairs, cross_pairs


def _run_datasketch(docs, side, threshold, num_perm, k, seed, hashfunc=None):
    from datasketch import MinHash, MinHashLSH

    kw = {"num_perm": num_perm, "seed": seed + 1}
    if hashfunc is not None:
        kw["hashfunc"] = hashfunc
    t0 = time.perf_counter()
    mh = MinHash.bulk(([s.encode("utf-8", "surrogatepass") for s in shingles(d, k)] for d in docs), **kw)
    sig = np.stack([m.hashvalues for m in mh])  # for the Jaccard check, vectorised (MinHash.jaccard per pair is slower)
    t1 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    with lsh.insertion_session() as s:
        for i, m in enumerate(mh):
            s.insert(i, m, check_duplication=False)
    cand = _pairs_from_lists([lsh.query(m) for m in mh])
    self_pairs = _verify(sig, cand, threshold)
    t2 = time.perf_counter()
    tr = np.flatnonzero(side)
    ho = np.flatnonzero(~side)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    with lsh.insertion_session() as s:
        for i in tr.tolist():
            s.insert(i, mh[i], check_duplication=False)
    rows = [(a, q) for q in ho.tolist() for a in lsh.query(mh[q])]
    cand = np.sort(np.array(rows, np.int64).reshape(-1, 2), axis=1)
    cross_pairs = _verify(sig, cand, threshold)
    t3 = time.perf_counter()
    return {"sig": t1 - t0, "self": t2 - t1, "cross": t3 - t2}, self_pairs, cross_pairs


def run_datasketch(docs, side, threshold, num_perm, k, seed):
    """datasketch 2 defaults: MinHash.bulk (sha1_hash32, scheme affine32) + MinHashLSH."""
    return _run_datasketch(docs, side, threshold, num_perm, k, seed)


def run_datasketch_xxh(docs, side, threshold, num_perm, k, seed):
    """datasketch with xxhash.xxh32_intdigest as hashfunc (the docs suggest a faster hashfunc)."""
    import xxhash

    return _run_datasketch(docs, side, threshold, num_perm, k, seed, hashfunc=xxhash.xxh32_intdigest)


def _sig_rensa(docs, num_perm, k, seed):
    import rensa

    return np.array(
        rensa.RMinHash.digest_matrix_from_token_sets([shingles(d, k) for d in docs], num_perm, seed).to_rows(),
        np.uint32,
    )


def _sig_rensa_flat(docs, num_perm, k, seed):
    import rensa

    sh, off = shingle_hashes(docs, k)
    m = rensa.RMinHash.digest_matrix_from_flat_token_hashes(sh, off.astype(np.uint64), num_perm, seed)
    return np.array(m.to_rows(), np.uint32)


def _sig_datasketch(docs, num_perm, k, seed):
    from datasketch import MinHash

    mh = MinHash.bulk(
        ([s.encode("utf-8", "surrogatepass") for s in shingles(d, k)] for d in docs), num_perm=num_perm, seed=seed + 1
    )
    return np.stack([m.hashvalues for m in mh])


#: signatures alone, for the estimator-error check (Jaccard estimate = fraction of agreeing slots)
SIGS: dict[str, Callable] = {
    "ours": lambda d, p, k, s: MinHasher(p, k, s).signatures(d),
    "rensa": _sig_rensa,
    "rensa_sig": _sig_rensa_flat,
    "datasketch": _sig_datasketch,
}

IMPLS: dict[str, Callable] = {
    "ours": run_ours,
    "rensa": run_rensa,
    "rensa_sig": run_rensa_sig,
    "datasketch": run_datasketch,
    "datasketch_xxh": run_datasketch_xxh,
}

# --------------------------------------------------------------------------------------------- exact ground truth


def exact_pairs(docs: Sequence[str], threshold: float, k: int) -> dict[tuple[int, int], float]:
    """All pairs with exact shingle-set Jaccard >= threshold (sparse X @ X.T in row blocks)."""
    from scipy import sparse

    vocab: dict[str, int] = {}
    indptr, indices = [0], []
    for d in docs:
        ids = sorted({vocab.setdefault(s, len(vocab)) for s in shingles(d, k)})
        indices.extend(ids)
        indptr.append(len(indices))
    x = sparse.csr_matrix((np.ones(len(indices), np.int32), indices, indptr), shape=(len(docs), len(vocab)))
    size = np.diff(x.indptr)
    xt = x.T.tocsc()
    out: dict[tuple[int, int], float] = {}
    for lo in range(0, len(docs), 512):
        inter = (x[lo : lo + 512] @ xt).tocoo()
        i = inter.row + lo
        j = inter.col
        m = i < j
        i, j, c = i[m], j[m], inter.data[m]
        jac = c / (size[i] + size[j] - c)
        keep = jac >= threshold
        out.update(zip(zip(i[keep].tolist(), j[keep].tolist(), strict=True), jac[keep].tolist(), strict=True))
    return out


def exact_jaccard(a: str, b: str, k: int) -> float:
    sa, sb = set(shingles(a, k)), set(shingles(b, k))
    return len(sa & sb) / len(sa | sb)


def plant(docs: Sequence[str], n: int, rng: random.Random) -> tuple[list[str], list[int], list[str]]:
    """n edited copies of random documents with at least 8 words: (copies, index of original, kind)."""
    vocab = ["banana", "quickly", "refund", "seven", "purple", "ticket", "whatever", "honestly"]
    kinds = ["sub1", "del1", "ins1", "sub2", "case"]
    copies, orig, kind = [], [], []
    pool = [i for i, d in enumerate(docs) if len(_WORD.findall(d.lower())) >= 8]
    for c in range(n):
        i = rng.choice(pool)
        d = docs[i]
        spans = [m.span() for m in _WORD.finditer(d.lower())]
        kd = kinds[c % len(kinds)]
        if kd == "case":
            new = d.upper().rstrip(".!?") + " !!"
        else:
            picks = sorted(rng.sample(range(len(spans)), 2 if kd == "sub2" else 1), reverse=True)
            new = d
            for p in picks:
                a, b = spans[p]
                rep = {
                    "sub1": rng.choice(vocab),
                    "sub2": rng.choice(vocab),
                    "del1": "",
                    "ins1": d[a:b] + " " + rng.choice(vocab),
                }[kd]
                new = new[:a] + rep + new[b:]
        copies.append(new)
        orig.append(i)
        kind.append(kd)
    return copies, orig, kind


# --------------------------------------------------------------------------------------------- main


def _time_impls(
    docs: list[str], side: np.ndarray, impls: list[str], repeat: int, th: float, npm: int, k: int, result: dict
) -> dict[str, np.ndarray]:
    """Time each implementation `repeat` times on the full set; returns each one's self pairs."""
    found_self: dict[str, np.ndarray] = {}
    for name in impls:
        fn = IMPLS[name]
        runs = []
        for _ in range(repeat):
            gc.collect()
            t, sp, cp = fn(docs, side, th, npm, k, 0)
            t["total"] = sum(t.values())
            runs.append(t)
            print(name, {a: round(b, 2) for a, b in t.items()}, len(sp), len(cp), flush=True)
        found_self[name] = sp
        result["impls"][name] = {
            "median": {a: statistics.median(r[a] for r in runs) for a in runs[0]},
            "min": {a: min(r[a] for r in runs) for a in runs[0]},
            "self_pairs": int(len(sp)),
            "cross_pairs": int(len(cp)),
        }
    return found_self


def _full_set_quality(
    docs: list[str], found_self: dict[str, np.ndarray], th: float, k: int, result: dict
) -> set[tuple[int, int]]:
    """Exact precision of every pair found on the full set, recall against the union of the true ones; returns
    that union of found pairs (the quality sample includes their documents)."""
    union = set()
    for p in found_self.values():
        union.update(map(tuple, p.tolist()))
    exact = {p: exact_jaccard(docs[p[0]], docs[p[1]], k) for p in union}
    true_union = {p for p, j in exact.items() if j >= th}
    for name, p in found_self.items():
        s = set(map(tuple, p.tolist()))
        tp = sum(exact[q] >= th for q in s)
        result["impls"][name]["full_precision"] = tp / len(s) if s else float("nan")
        result["impls"][name]["full_recall_vs_union"] = tp / len(true_union) if true_union else float("nan")
    result["full_true_pairs_in_union"] = len(true_union)
    return union


def _quality_sample(
    docs: list[str], union: set[tuple[int, int]], n_sample: int, n_planted: int
) -> tuple[list[str], dict[tuple[int, int], str]]:
    """(sample documents, planted pair -> kind of edit): random documents, every one any implementation paired,
    then planted near-copies of them (seeded, so every run measures the same sample)."""
    rng = random.Random(13)
    idx = set(rng.sample(range(len(docs)), n_sample))
    for p in union:
        idx.update(p)
    idx = sorted(idx)
    sample = [docs[i] for i in idx]
    copies, orig, kind = plant(sample, n_planted, rng)
    sample += copies
    planted_pairs = {(o, len(idx) + c): kd for c, (o, kd) in enumerate(zip(orig, kind, strict=True))}
    return sample, planted_pairs


def _sample_quality(
    sample: list[str],
    truth: dict[tuple[int, int], float],
    planted_pairs: dict[tuple[int, int], str],
    impls: list[str],
    th: float,
    npm: int,
    k: int,
    seeds: int,
    result: dict,
) -> None:
    """Recall and precision on the sample against exact Jaccard, averaged over `seeds` MinHash seeds."""
    sside = np.array([bool(i % 2) for i in range(len(sample))])  # side only needed by the runner's cross part
    bins = [(th, 0.9), (0.9, 0.95), (0.95, 1.01)]
    for name in impls:
        rec, prec, rec_pl, bin_rec = [], [], [], {f"{a:.2f}-{min(b, 1):.2f}": [] for a, b in bins}
        for seed in range(seeds):
            _, sp, _ = IMPLS[name](sample, sside, th, npm, k, seed)
            s = set(map(tuple, sp.tolist()))
            tp = len(s & truth.keys())
            rec.append(tp / len(truth))
            prec.append(tp / len(s) if s else float("nan"))
            pt = [p for p in planted_pairs if p in truth]
            rec_pl.append(sum(p in s for p in pt) / len(pt))
            for a, b in bins:
                ps = [p for p, j in truth.items() if a <= j < b]
                bin_rec[f"{a:.2f}-{min(b, 1):.2f}"].append(sum(p in s for p in ps) / len(ps) if ps else float("nan"))
        result["impls"][name]["sample_recall"] = statistics.mean(rec)
        result["impls"][name]["sample_precision"] = statistics.mean(prec)
        result["impls"][name]["planted_recall"] = statistics.mean(rec_pl)
        result["impls"][name]["recall_by_exact_j"] = {a: statistics.mean(v) for a, v in bin_rec.items()}
        print(name, {a: v for a, v in result["impls"][name].items() if a not in ("median", "min")}, flush=True)
    result["sample"]["true_by_exact_j"] = {
        f"{a:.2f}-{min(b, 1):.2f}": sum(a <= j < b for j in truth.values()) for a, b in bins
    }


def _estimator_error(sample: list[str], impls: list[str], npm: int, k: int, seeds: int, result: dict) -> None:
    """Estimated minus exact Jaccard over the sample's pairs with exact J >= 0.5, by shingle-set size."""
    lo = exact_pairs(sample, 0.5, k)
    pp = np.array(list(lo), np.int64).reshape(-1, 2)
    jj = np.array(list(lo.values()))
    nsh = np.array([len(set(shingles(d, k))) for d in sample])
    small = np.maximum(nsh[pp[:, 0]], nsh[pp[:, 1]]) < npm
    result["estimator_pairs"] = {"all": len(pp), f"both_under_{npm}_shingles": int(small.sum())}
    for name in [n for n in SIGS if n in impls]:
        errs = []
        for seed in range(seeds):
            g = SIGS[name](sample, npm, k, seed)
            errs.append((g[pp[:, 0]] == g[pp[:, 1]]).mean(axis=1) - jj)
        e = np.concatenate(errs)
        sm = np.tile(small, seeds)
        stats = lambda x: {"bias": float(x.mean()), "rmse": float(np.sqrt((x**2).mean()))}  # noqa: E731
        result["impls"][name]["estimator"] = {
            "all": stats(e),
            f"under_{npm}": stats(e[sm]),
            f"{npm}_plus": stats(e[~sm]),
        }
        print(name, "estimator", result["impls"][name]["estimator"], flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", type=Path, default=None, help="prepare's conversations.jsonl")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--impl", default=",".join(IMPLS))
    ap.add_argument("--threshold", type=float, default=0.85)
    ap.add_argument("--num-perm", type=int, default=64)
    ap.add_argument("--shingle-size", type=int, default=3)
    ap.add_argument("--sample", type=int, default=2500, help="random conversations in the quality sample")
    ap.add_argument("--planted", type=int, default=500)
    ap.add_argument("--seeds", type=int, default=5, help="MinHash seeds the quality numbers are averaged over")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    th, npm, k = args.threshold, args.num_perm, args.shingle_size
    impls = args.impl.split(",")

    tmp = None
    if args.prepared is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_minhash_")
        args.prepared = build_prepared(args.n, Path(tmp.name))
    docs, side = load_docs(args.prepared, args.n)
    print(f"{len(docs)} conversations, {side.sum()} train-side, {len(docs) - side.sum()} held-out", flush=True)

    # sanity: our shingle count per document equals the Python shingler's (same tokenisation)
    chk = docs[:2000]
    _, off = shingle_hashes(chk, k)
    assert (np.diff(off) == np.array([len(shingles(d, k)) for d in chk])).all(), "shingling differs"

    result: dict = {"n": len(docs), "threshold": th, "num_perm": npm, "shingle_size": k, "impls": {}}
    found_self = _time_impls(docs, side, impls, args.repeat, th, npm, k, result)
    union = _full_set_quality(docs, found_self, th, k, result)
    sample, planted_pairs = _quality_sample(docs, union, args.sample, args.planted)
    truth = exact_pairs(sample, th, k)
    result["sample"] = {
        "docs": len(sample),
        "true_pairs": len(truth),
        "planted": len(planted_pairs),
        "planted_true": sum(p in truth for p in planted_pairs),
    }
    print("sample", result["sample"], flush=True)
    _sample_quality(sample, truth, planted_pairs, impls, th, npm, k, args.seeds, result)
    _estimator_error(sample, impls, npm, k, args.seeds, result)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
