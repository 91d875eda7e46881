"""Seed soups: `python -m experiments.soup --splits data/splits --members 13 14 15 --out-dir /tmp/soup`.

Why: seeds move test recall by 30+ points and real-text counts by as much, so a single fine-tune is a draw. A
logit average of three seeds (replayed from dumps) is steadier but costs three models per turn. A *soup*, the
element-wise mean of the members' weights, costs one: it works when the members stay in one basin, which needs
the same starting point, so every member starts from the same head initialisation (`--init-seed`) and differs
only in its data sample, order and dropout. This trains the members, saves their weights, and judges each
member, their logit ensemble and their soup on the same synthetic splits and real sets as
experiments/turn_scorer.py (raw logits dumped for replay by experiments/policy_frontier.py).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from experiments.turn_scorer import RawScores, judge_all, summary, torch_raw
from pipeline.common.config import load_config, section, typed
from pipeline.data.split_files import read_split, split_path
from pipeline.evaluation.config import CalibrationConfig
from pipeline.stages.evaluate import Scored
from serving.policy import PolicyConfig

log = logging.getLogger(__name__)


def train_member(splits, seed: int, init_seed: int, out: Path):
    """One fine-tune whose head starts from `init_seed`, weights saved to `out` (a member of the soup)."""
    import torch

    import pipeline.model.modeling as modeling
    from pipeline.model.config import TrainConfig
    from pipeline.model.training import fit

    raw = copy.deepcopy(load_config("train", "default"))
    raw["optim"]["seed"] = seed
    cfg = typed(TrainConfig, raw, "train")
    build = modeling.build_model
    modeling.build_model = lambda name, seed=None: build(name, seed=init_seed)
    try:
        res = fit(splits["train"], splits["valid"], cfg, progress=False)
    finally:
        modeling.build_model = build
    torch.save(res.model.state_dict(), out)
    return res


def soup_model(base_model: str, init_seed: int, members: list[Path]):
    """The element-wise mean of the members' weights, in a model built like theirs."""
    import torch

    from pipeline.model.modeling import build_model

    model, tokenizer = build_model(base_model, seed=init_seed)
    states = [torch.load(p, map_location="cpu") for p in members]
    mean = {k: sum(s[k].double() for s in states) / len(states) for k in states[0]}
    model.load_state_dict({k: v.to(states[0][k].dtype) for k, v in mean.items()})
    return model.eval(), tokenizer


def judge_model(model, tokenizer, splits, cal, base, args, dump: Path) -> dict[str, Any]:
    """Score valid/test and the real sets with `model`, dump the raw logits, judge like turn_scorer does."""
    from pipeline.model.modeling import predict_logits
    from pipeline.model.windows import build_windows
    from serving.window import WindowEncoder

    spec = typed_window_spec()
    enc = WindowEncoder(tokenizer, spec)
    scored = {}
    for n in ("valid", "test"):
        ws = build_windows(splits[n], enc, keep_unscored=True)
        scored[n] = Scored(splits[n], ws, predict_logits(model, ws, pad_id=enc.pad_id))
    raw = RawScores(torch_raw(model, enc))
    run = judge_all(raw, scored["valid"], scored["test"], cal, base, args.datasets, args.contrast, args.topical_limit)
    dump.write_bytes(pickle.dumps({"memo": raw.memo, "logits": {n: scored[n].logits for n in scored}}))
    return run


def typed_window_spec():
    from pipeline.model.config import TrainConfig

    return typed(TrainConfig, load_config("train", "default"), "train").window.spec()


def ensemble_dump(dumps: list[Path], out: Path) -> None:
    """The members' mean raw logits as one dump (the 3-models-per-turn reference the soup must approach)."""
    loaded = [pickle.loads(p.read_bytes()) for p in dumps]
    logits = {n: np.mean([d["logits"][n] for d in loaded], axis=0) for n in loaded[0]["logits"]}
    memo = {
        k: [np.mean([d["memo"][k][i] for d in loaded], axis=0) for i in range(len(v))]
        for k, v in loaded[0]["memo"].items()
    }
    out.write_bytes(pickle.dumps({"memo": memo, "logits": logits}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--splits", default="data/splits")
    ap.add_argument("--members", type=int, nargs="+", default=[13, 14, 15], help="one training seed per member")
    ap.add_argument("--init-seed", type=int, default=13, help="the head initialisation every member starts from")
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--contrast", type=Path, default=Path("data/probes/contrast.yaml"))
    ap.add_argument("--topical-limit", type=int, default=600)
    ap.add_argument("--judge-members", action="store_true", help="also judge (and dump) every member")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cal = section(CalibrationConfig, "policy", "calibration", "default")
    base = section(PolicyConfig.from_dict, "policy", "policy", "default")
    splits = {n: read_split(split_path(args.splits, n)) for n in ("train", "valid", "test")}
    results: dict[str, Any] = {}
    weights = []
    for seed in args.members:
        weights.append(args.out_dir / f"member-{seed}.pt")
        if weights[-1].exists():
            log.info("member %d: reusing %s", seed, weights[-1])
            continue
        res = train_member(splits, seed, args.init_seed, weights[-1])
        if not args.judge_members:
            continue
        results[f"member-{seed}"] = judge_model(
            res.model.eval(), res.tokenizer, splits, cal, base, args, args.out_dir / f"member-{seed}.pkl"
        )
        log.info("member %d: %s", seed, json.dumps(summary(results[f"member-{seed}"])))
        (args.out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    base_model = load_config("train", "default")["model"]["base_model"]
    model, tokenizer = soup_model(base_model, args.init_seed, weights)
    results["soup"] = judge_model(model, tokenizer, splits, cal, base, args, args.out_dir / "soup.pkl")
    log.info("soup: %s", json.dumps(summary(results["soup"])))
    if args.judge_members:
        ensemble_dump([args.out_dir / f"member-{s}.pkl" for s in args.members], args.out_dir / "ensemble.pkl")
    (args.out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
