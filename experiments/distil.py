"""One student distilled from a seed ensemble: `python -m experiments.distil --members-dir D --members 13 14 15`.

Why: docs/experiments/2026-12-04-seed-ensemble-and-soup.md. The mean logits of three seeds judge real text better
than any seed, at three models per turn, and the weight soup of the same members does not. Distillation is the
other way to one model: train a student on the members' averaged probabilities (mixed with the gold labels,
`--alpha` of gold) over its own training windows, so it learns the ensemble's smoother scores. Members are the
weights experiments/soup.py saved (same head initialisation); the student starts from that initialisation too.
Judged, and dumped, like every variant; `--judge-members` also judges the members (for their ensemble's dump).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from experiments.soup import ensemble_dump, judge_model
from experiments.turn_scorer import summary
from pipeline.common.config import load_config, section, typed
from pipeline.data.split_files import read_split, split_path
from pipeline.evaluation.config import CalibrationConfig
from serving.policy import PolicyConfig

log = logging.getLogger(__name__)


def load_member(base_model: str, init_seed: int, path: Path):
    import torch

    from pipeline.model.modeling import build_model

    model, tokenizer = build_model(base_model, seed=init_seed)
    model.load_state_dict(torch.load(path, map_location="cpu"))
    return model.eval(), tokenizer


def teacher_probs(members: list[Any], ws, pad_id: int) -> np.ndarray:
    """The members' mean raw logits on `ws`, as probabilities (the ensemble the student imitates)."""
    from pipeline.model.modeling import predict_logits

    logits = np.mean([predict_logits(m, ws, pad_id=pad_id, progress="teacher") for m in members], axis=0)
    return 1 / (1 + np.exp(-logits))


def train_student(splits, members: list[Any], seed: int, init_seed: int, alpha: float):
    """fit() with its training windows' labels replaced by alpha * gold + (1 - alpha) * teacher probability."""
    import pipeline.model.modeling as modeling
    import pipeline.model.training as training
    from pipeline.model.config import TrainConfig

    raw = copy.deepcopy(load_config("train", "default"))
    raw["optim"]["seed"] = seed
    cfg = typed(TrainConfig, raw, "train")
    original_data, build = training.training_data, modeling.build_model

    def soft_data(train_convs, valid_convs, encoder, c):
        data = original_data(train_convs, valid_convs, encoder, c)  # pos_weight stays from the gold labels
        soft = teacher_probs(members, data.train, encoder.pad_id).astype(np.float32)
        data.train.labels = (alpha * data.train.labels + (1 - alpha) * soft).astype(np.float32)
        return data

    training.training_data = soft_data
    modeling.build_model = lambda name, seed=None: build(name, seed=init_seed)
    try:
        return training.fit(splits["train"], splits["valid"], cfg, progress=False)
    finally:
        training.training_data, modeling.build_model = original_data, build


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--splits", default="data/splits")
    ap.add_argument("--members-dir", type=Path, required=True, help="experiments/soup.py's --out-dir")
    ap.add_argument("--members", type=int, nargs="+", default=[13, 14, 15])
    ap.add_argument("--init-seed", type=int, default=13)
    ap.add_argument("--seed", type=int, default=13, help="the student's data sample and order")
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of the gold labels in the student's targets")
    ap.add_argument("--judge-members", action="store_true")
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--contrast", type=Path, default=Path("data/probes/contrast.yaml"))
    ap.add_argument("--topical-limit", type=int, default=600)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cal = section(CalibrationConfig, "policy", "calibration", "default")
    base = section(PolicyConfig.from_dict, "policy", "policy", "default")
    splits = {n: read_split(split_path(args.splits, n)) for n in ("train", "valid", "test")}
    base_model = load_config("train", "default")["model"]["base_model"]
    loaded = {s: load_member(base_model, args.init_seed, args.members_dir / f"member-{s}.pt") for s in args.members}
    stem = f"distil-{args.seed}-a{args.alpha:g}"
    results: dict[str, Any] = {}
    res = train_student(splits, [m for m, _ in loaded.values()], args.seed, args.init_seed, args.alpha)
    results["student"] = judge_model(
        res.model.eval(), res.tokenizer, splits, cal, base, args, args.members_dir / f"{stem}.pkl"
    )
    log.info("student: %s", json.dumps(summary(results["student"])))
    (args.members_dir / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
    for s, (model, tok) in loaded.items() if args.judge_members else ():
        dump = args.members_dir / f"member-{s}.pkl"
        results[f"member-{s}"] = judge_model(model, tok, splits, cal, base, args, dump)
        log.info("member %d: %s", s, json.dumps(summary(results[f"member-{s}"])))
        (args.members_dir / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
    if args.judge_members:
        ensemble_dump([args.members_dir / f"member-{s}.pkl" for s in args.members], args.members_dir / "ensemble.pkl")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
