"""Realism probe: does the synthetic corpus teach the task, or only its templates?

A TF-IDF (word + char n-grams) + logistic-regression turn classifier is trained on the user turns of the
synthetic TRAIN template groups and scored:
  (a) on the template-disjoint synthetic TEST groups (families never seen in training),
  (b) zero-shot on real ConvAbuse user turns (`abuse`, majority vote; valid = the reported number, train =
      the development set used while iterating on the generator, so valid stays untouched by tuning),
  (c) on a template-SHARING random split of the same synthetic data (the optimistic number, to show the gap).
(a) near 1.0 with (b) near chance would mean the corpus teaches templates, not the task.

Groups 0-6 train, 7 valid, 8-9 test: the same whole-group rule as the split stage, computed here in memory so
the probe does not depend on the other stages.

    python -m experiments.probe_realism [--n 4000] [--seed 13] [--convabuse ../shared/datasets/convabuse]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.data.sources.synthetic import generate
from pipeline.data.sources.synthetic.families import family_counts
from serving.labels import USER_LABELS
from serving.policy import PolicyConfig

log = logging.getLogger("probe_realism")

TRAIN_GROUPS = frozenset(range(7))
VALID_GROUPS = frozenset({7})
TEST_GROUPS = frozenset({8, 9})
DEFAULT_CONVABUSE = Path("../shared/datasets/convabuse")


def user_turns(records: Sequence[dict]) -> list[tuple[str, frozenset[str]]]:
    """(text, labels) of every user turn."""
    return [(t["text"], frozenset(t["labels"])) for r in records for t in r["turns"] if t["role"] == "user"]


def make_model(seed: int) -> Any:
    """Word 1-2-grams + char 2-5-grams (word-bounded), sublinear TF-IDF, balanced logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, lowercase=True),
    )
    clf = LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced", random_state=seed)
    return make_pipeline(features, clf)


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro", labels=[0, 1], zero_division=0))


def fit_score(
    train: list[tuple[str, frozenset[str]]], evals: dict[str, list[tuple[str, int]]], label: str, seed: int
) -> dict[str, float]:
    """Fit on `train` for `label`; macro-F1 (both classes, threshold 0.5) on each eval set."""
    y = [int(label in labels) for _, labels in train]
    if len(set(y)) < 2:
        return {name: float("nan") for name in evals}
    model = make_model(seed)
    model.fit([t for t, _ in train], y)
    out = {}
    for name, rows in evals.items():
        if not rows:
            continue
        pred = model.predict([t for t, _ in rows])
        out[name] = round(macro_f1([yy for _, yy in rows], list(pred)), 4)
    return out


def load_convabuse(path: Path, split: str) -> list[tuple[str, int]]:
    """(user text, abusive) for the rows of one ConvAbuse split, through the project's adapter."""
    from pipeline.data.sources.convabuse import read_convabuse

    rows = []
    for rec in read_convabuse(path, [split]):
        idx = rec["meta"]["labelled_turns"]
        if idx:
            turn = rec["turns"][idx[0]]
            rows.append((turn["text"], int("abuse" in turn["labels"])))
    return rows


def run(n: int, seed: int, convabuse: Path | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    records = list(generate(n, seed, PolicyConfig()))
    gen_s = time.perf_counter() - t0
    by_split: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    for r in records:
        g = r["meta"]["template_group"]
        by_split["train" if g in TRAIN_GROUPS else "valid" if g in VALID_GROUPS else "test"].append(r)
    train, test = user_turns(by_split["train"]), user_turns(by_split["test"])

    # (c) template-sharing: a random conversation split of the same records, test the same size as (a)'s.
    shuffled = records[:]
    random.Random(seed).shuffle(shuffled)
    k = len(by_split["test"])
    share_test, share_train = user_turns(shuffled[:k]), user_turns(shuffled[k:])

    result: dict[str, Any] = {
        "n_conversations": n,
        "seed": seed,
        "generate_seconds": round(gen_s, 2),
        "user_turns": {"train": len(train), "test": len(test)},
        "family_counts": family_counts(),
        "template_disjoint_test": {},
        "template_sharing_test": {},
    }
    real: dict[str, list[tuple[str, int]]] = {}
    if convabuse is not None:
        for split in ("train", "valid"):
            real[f"convabuse_{split}"] = load_convabuse(convabuse, split)
    for label in USER_LABELS:
        disjoint = [(t, int(label in ls)) for t, ls in test]
        evals = {"disjoint": disjoint}
        if label == "abuse":
            evals.update(real)
        scores = fit_score(train, evals, label, seed)
        result["template_disjoint_test"][label] = scores["disjoint"]
        if label == "abuse":
            for name in real:
                result[f"{name}_zero_shot_abuse"] = scores[name]
        sharing = fit_score(share_train, {"s": [(t, int(label in ls)) for t, ls in share_test]}, label, seed)
        result["template_sharing_test"][label] = sharing["s"]
    if "convabuse_train" in real and "convabuse_valid" in real:
        # Reference point: the same model trained on real ConvAbuse train (in-domain), scored on valid.
        ref_train = [(t, frozenset({"abuse"}) if y else frozenset()) for t, y in real["convabuse_train"]]
        result["convabuse_in_domain_reference_abuse"] = fit_score(
            ref_train, {"v": real["convabuse_valid"]}, "abuse", seed
        )["v"]
        result["convabuse_valid_rows"] = len(real["convabuse_valid"])
        result["convabuse_valid_abusive"] = sum(y for _, y in real["convabuse_valid"])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=4000, help="synthetic conversations to generate")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--convabuse", type=Path, default=DEFAULT_CONVABUSE, help="folder with the ConvAbuse CSVs")
    ap.add_argument("--out", type=Path, default=Path("metrics/realism.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    convabuse: Path | None = args.convabuse
    if convabuse is not None and not (convabuse / "ConvAbuseEMNLPvalid.csv").exists():
        log.warning("ConvAbuse not found at %s: skipping the zero-shot score (b)", convabuse)
        convabuse = None
    if args.n < 100:
        print(f"error: --n must be at least 100, got {args.n}", file=sys.stderr)
        return 2
    result = run(args.n, args.seed, convabuse)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"(a) template-disjoint synthetic test, macro-F1: {result['template_disjoint_test']}")
    if "convabuse_valid_zero_shot_abuse" in result:
        print(
            f"(b) ConvAbuse valid zero-shot abuse macro-F1: {result['convabuse_valid_zero_shot_abuse']}"
            f"  (train rows, the dev set: {result['convabuse_train_zero_shot_abuse']};"
            f" in-domain reference trained on ConvAbuse train: {result['convabuse_in_domain_reference_abuse']})"
        )
    print(f"(c) template-sharing synthetic test, macro-F1: {result['template_sharing_test']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
