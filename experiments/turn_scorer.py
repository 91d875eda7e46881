"""Per-turn scorers compared on the synthetic test *and* on real text: `python -m experiments.turn_scorer`.

A scorer here turns one conversation into per-turn calibrated scores. Variants:
- `bundle`: a shipped bundle (Guard), for the baseline numbers;
- `frozen`: MiniLM's mean-pooled sentence embedding of each turn alone (as it was pretrained), frozen, with a
  small MLP head per role trained on the synthetic train split's turns; embeddings are cached per text.
Each is calibrated on valid with evaluate's own functions (temperatures, threshold search), replayed on test,
and judged on the real transfer sets (pipeline/evaluation/transfer.py) and the contrast probes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.config import section
from pipeline.data.split_files import read_split, split_path
from pipeline.evaluation.config import CalibrationConfig
from pipeline.evaluation.replay_metrics import conversation_metrics
from pipeline.evaluation.report import conversation_scores
from pipeline.evaluation.thresholds import calibrated, replay_all
from pipeline.evaluation.transfer import (
    contrast_sets,
    contrast_turn_metrics,
    convabuse_chains,
    judge,
    load_contrast,
    topical_chat,
)
from pipeline.evaluation.transfer import convabuse_zero_shot as transfer_zero_shot
from pipeline.model.windows import WindowSet
from pipeline.stages.evaluate import Scored, calibrate
from serving.labels import MODEL_LABELS, label_mask
from serving.policy import PolicyConfig
from serving.window import clean_text

log = logging.getLogger("experiments.turn_scorer")
N = len(MODEL_LABELS)


# --------------------------------------------------------------------------- turns and embeddings
def turn_set(convs) -> WindowSet:
    """One row per non-system turn (labels, role mask, where it came from); no token ids."""
    ws = WindowSet()
    labels, masks, ci_, ti_ = [], [], [], []
    for ci, c in enumerate(convs):
        known = c.meta.get("labelled_turns")
        known = None if known is None else set(known)
        for ti, t in enumerate(c.turns):
            if t.role == "system":
                continue
            m = list(label_mask(t.role))
            if known is not None and ti not in known:
                m = [0.0] * N
            labels.append([1.0 if n in t.labels else 0.0 for n in MODEL_LABELS])
            masks.append(m)
            ci_.append(ci)
            ti_.append(ti)
            ws.roles.append(t.role)
            ws.categories.append(c.category or "unknown")
            ws.input_ids.append([])
            ws.type_ids.append([])
    ws.labels = np.asarray(labels, np.float32).reshape(-1, N)
    ws.mask = np.asarray(masks, np.float32).reshape(-1, N)
    ws.conv_index, ws.turn_index = np.asarray(ci_, np.int64), np.asarray(ti_, np.int64)
    ws.hard = np.zeros(len(labels), bool)
    return ws


class Embedder:
    """MiniLM sentence embeddings (mean pooling, L2-normalised), cached on disk by text."""

    def __init__(self, cache: Path, max_tokens: int = 64, threads: int = 2) -> None:
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoModel

        from pipeline.model.modeling import minilm_path

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = AutoModel.from_pretrained(str(minilm_path())).eval()
        self.tok = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
        self.tok.enable_truncation(max_tokens)
        self.tok.no_padding()
        self.cache_path = cache
        self.cache: dict[str, np.ndarray] = {}
        if cache.is_file():
            z = np.load(cache, allow_pickle=False)
            self.cache = dict(zip(z["keys"].tolist(), z["vecs"], strict=True))

    @staticmethod
    def key(text: str) -> str:
        return hashlib.blake2b(clean_text(text).encode(), digest_size=12).hexdigest()

    def __call__(self, texts: list[str], batch: int = 64) -> np.ndarray:
        keys = [self.key(t) for t in texts]
        todo = sorted(
            {k: clean_text(t) for k, t in zip(keys, texts, strict=True) if k not in self.cache}.items(),
            key=lambda kv: len(kv[1]),
        )
        torch = self.torch
        for lo in range(0, len(todo), batch):
            part = todo[lo : lo + batch]
            encs = self.tok.encode_batch([t for _, t in part])
            width = max(len(e.ids) for e in encs)
            ids = torch.tensor([e.ids + [0] * (width - len(e.ids)) for e in encs])
            mask = torch.tensor([[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in encs])
            with torch.inference_mode():
                h = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
                v = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
                v = torch.nn.functional.normalize(v, dim=-1)
            for (k, _), row in zip(part, v.numpy(), strict=True):
                self.cache[k] = row.astype(np.float32)
        if todo:
            np.savez(self.cache_path, keys=np.array(list(self.cache)), vecs=np.stack(list(self.cache.values())))
        return np.stack([self.cache[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)


def turn_set_windows(convs) -> WindowSet:
    """The rows build_windows(keep_unscored=True) makes (every non-system turn), without tokenising."""
    return turn_set(convs)


def split_embeddings(emb: Embedder, convs, ws: WindowSet) -> np.ndarray:
    return emb([convs[c].turns[t].text for c, t in zip(ws.conv_index, ws.turn_index, strict=True)])


# --------------------------------------------------------------------------- the head
@dataclass
class HeadConfig:
    hidden: int = 256
    dropout: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 1e-2
    epochs: int = 40
    batch: int = 256
    patience: int = 6
    pos_weight_cap: float = 20.0


def train_head(x: np.ndarray, ws: WindowSet, xv: np.ndarray, vws: WindowSet, cfg: HeadConfig, seed: int):
    """An MLP on [embedding, is_user] -> 5 logits, masked BCE; the best epoch on valid macro-F1@0.5."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    d = x.shape[1] + 1
    net = torch.nn.Sequential(
        torch.nn.Dropout(cfg.dropout),
        torch.nn.Linear(d, cfg.hidden),
        torch.nn.GELU(),
        torch.nn.Dropout(cfg.dropout),
        torch.nn.Linear(cfg.hidden, N),
    )
    feats = lambda e, w: torch.tensor(np.hstack([e, np.array([[r == "user"] for r in w.roles], np.float32)]))  # noqa: E731
    xt, xvt = feats(x, ws), feats(xv, vws)
    y, m = torch.tensor(ws.labels), torch.tensor(ws.mask)
    pos = (ws.labels * ws.mask).sum(0)
    neg = ((1 - ws.labels) * ws.mask).sum(0)
    pw = torch.tensor(
        np.clip(np.where(pos > 0, neg / np.maximum(pos, 1), 1.0), 1.0, cfg.pos_weight_cap), dtype=torch.float32
    )
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state, bad = -1.0, None, 0
    for _ in range(cfg.epochs):
        net.train()
        order = rng.permutation(len(xt))
        for lo in range(0, len(order), cfg.batch):
            idx = order[lo : lo + cfg.batch]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                net(xt[idx]), y[idx], pos_weight=pw, reduction="none"
            )
            loss = (loss * m[idx]).sum() / m[idx].sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            lv = net(xvt).numpy()
        f1 = macro_f1_at_half(lv, vws)
        if f1 > best + 1e-4:
            best, bad = f1, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    net.load_state_dict(best_state)
    net.eval()
    return net, feats


def macro_f1_at_half(logits: np.ndarray, ws: WindowSet) -> float:
    f1s = []
    for j in range(N):
        rows = ws.mask[:, j] > 0
        if not rows.any() or ws.labels[rows, j].sum() == 0:
            continue
        p, yv = logits[rows, j] >= 0, ws.labels[rows, j] > 0
        tp, fp, fn = (p & yv).sum(), (p & ~yv).sum(), (~p & yv).sum()
        f1s.append(2 * tp / max(2 * tp + fp + fn, 1))
    return float(np.mean(f1s))


# --------------------------------------------------------------------------- judging
def synthetic(valid: Scored, test: Scored, cal: CalibrationConfig, base: PolicyConfig) -> tuple[Any, dict[str, Any]]:
    c = calibrate(valid, base, cal, None)
    tprob = calibrated(test.logits, c.temperatures)
    scores = conversation_scores(test.convs, test.ws, tprob)
    replay = conversation_metrics(test.convs, replay_all(c.policy, test.convs, scores))
    ov = replay["overall"]
    per = replay["per_category"]
    out = {
        "thresholds": {k: round(v, 3) for k, v in c.policy.thresholds.items()},
        "ftr": ov["false_termination_rate"],
        "false_terminations": ov["false_terminations"],
        "recall": ov["termination_recall"],
        "terminated": ov["terminated"],
        "should_end": ov["should_end"],
        "early": ov["early_terminations"],
        "self_harm_ended": replay["self_harm_ended"],
        "recall_by_category": {
            k: v.get("termination_recall") for k, v in per.items() if v.get("termination_recall") is not None
        },
    }
    return c, out


def topical(datasets: Path, limit: int | None):
    """Topical-Chat test chats; with `limit`, the first limit/2 of each test split (every speaker as the user)."""
    if not limit:
        return topical_chat(datasets / "topical_chat", ("test_freq", "test_rare"))
    parts = [topical_chat(datasets / "topical_chat", (s,), limit // 2) for s in ("test_freq", "test_rare")]
    ts = parts[0]
    if all(p.available for p in parts):
        ts.conversations, ts.ids = parts[0].conversations + parts[1].conversations, parts[0].ids + parts[1].ids
        ts.note += f" (first {limit // 2} of each test split)"
    return ts


def real_text(
    score_turns,
    policy: PolicyConfig,
    datasets: Path,
    contrast: Path,
    abuse_threshold: float,
    topical_limit: int | None = None,
) -> dict[str, Any]:
    sets = [
        topical(datasets, topical_limit),
        convabuse_chains(datasets / "convabuse", abusive=True),
        convabuse_chains(datasets / "convabuse", abusive=False),
        *contrast_sets(contrast),
    ]
    res = judge(sets, score_turns, policy)
    return {
        k: {kk: v[kk] for kk in ("conversations", "ended", "ended_share", "end_reasons", "wrong_examples") if kk in v}
        for k, v in res.items()
    }


def convabuse_zero_shot(score_turns, datasets: Path, threshold: float) -> dict[str, Any]:
    """The transfer stage's zero-shot ConvAbuse numbers (pipeline/evaluation/transfer.py), for this scorer."""
    return transfer_zero_shot(score_turns, datasets / "convabuse", threshold)


def contrast_turns(score_turns, contrast: Path, thresholds: dict[str, float]) -> dict[str, Any]:
    """The probes stage's contrast-suite turn metrics (pipeline/evaluation/transfer.py), for this scorer."""
    return contrast_turn_metrics(score_turns, load_contrast(contrast), thresholds)


# --------------------------------------------------------------------------- scorers
def frozen_scorer(net, feats, emb: Embedder, temps: dict[str, float]):
    import torch

    from serving.calibration import scores_dicts, temperature_vector
    from serving.labels import role_scores

    tv = temperature_vector(temps)

    def score(convs):
        flat = [(ci, ti, r, t) for ci, c in enumerate(convs) for ti, (r, t) in enumerate(c)]
        x = emb([t for *_, t in flat])
        fake = WindowSet(roles=[r for _, _, r, _ in flat])
        with torch.no_grad():
            logits = net(feats(x, fake)).numpy()
        probs = scores_dicts(1 / (1 + np.exp(-logits / tv)))
        out = [[{} for _ in c] for c in convs]
        for (ci, ti, r, _), d in zip(flat, probs, strict=True):
            out[ci][ti] = role_scores(r, d)
        return out

    return score


class RawScores:
    """Raw per-turn logits of a model for lists of conversations, memoised, and calibrated views of them.

    Why: the model is the slow part (minutes); calibration and policy are seconds. Dumping these logits lets
    every calibration or policy variant be replayed on the same model without retraining."""

    def __init__(self, raw_fn) -> None:
        self.raw_fn, self.memo = raw_fn, {}

    @staticmethod
    def key(convs) -> str:
        return hashlib.blake2b(json.dumps(convs, ensure_ascii=True).encode(), digest_size=16).hexdigest()

    def raw(self, convs) -> list[np.ndarray]:
        k = self.key(convs)
        if k not in self.memo:
            self.memo[k] = self.raw_fn(convs) if self.raw_fn else None
            if self.memo[k] is None:
                raise KeyError("conversations not in the dump")
        return self.memo[k]

    def calibrated(self, temps: dict[str, float]):
        from serving.calibration import scores_dicts, temperature_vector
        from serving.labels import role_scores

        tv = temperature_vector(temps)

        def score(convs):
            out = []
            for c, logits in zip(convs, self.raw(convs), strict=True):
                probs = scores_dicts(1 / (1 + np.exp(-np.nan_to_num(logits) / tv)))
                out.append([role_scores(r, d) if r != "system" else {} for (r, _), d in zip(c, probs, strict=True)])
            return out

        return score


def torch_raw(model, encoder):
    """Raw logits per turn of a fine-tuned checkpoint, windowed by serving.window exactly as it was trained."""
    from pipeline.model.modeling import torch_logits

    def raw(convs):
        flat, windows = [], []
        for ci, c in enumerate(convs):
            for ti, w in enumerate(encoder.encode_conversation(c)):
                if c[ti][0] != "system":
                    flat.append((ci, ti))
                    windows.append(w)
        logits = torch_logits(model, windows, batch_size=64, pad_id=encoder.pad_id)
        out = [np.full((len(c), N), np.nan, np.float32) for c in convs]
        for (ci, ti), row in zip(flat, logits, strict=True):
            out[ci][ti] = row
        return out

    return raw


def judge_all(
    raw: RawScores,
    valid: Scored,
    test: Scored,
    cal,
    base,
    datasets: Path,
    contrast: Path,
    topical_limit: int | None = None,
) -> dict[str, Any]:
    """Calibrate on valid, replay test, judge the real sets: everything after the model."""
    c, syn = synthetic(valid, test, cal, base)
    score = raw.calibrated(c.temperatures)
    run = {
        "synthetic": syn,
        "real": real_text(score, c.policy, datasets, contrast, c.policy.thresholds["abuse"], topical_limit),
    }
    run["convabuse_zero_shot"] = convabuse_zero_shot(score, datasets, c.policy.thresholds["abuse"])
    run["contrast_turns"] = contrast_turns(score, contrast, c.policy.thresholds)
    run["veto_diagnosis"] = veto_diagnosis(valid, c)
    return run


def veto_diagnosis(valid: Scored, c) -> list[dict[str, Any]]:
    """The valid at-risk turns the veto head scores lowest: what sets the veto threshold."""
    j = MODEL_LABELS.index("self_harm_risk")
    ws = valid.ws
    p = calibrated(valid.logits, c.temperatures)[:, j]
    rows = [i for i in range(len(ws)) if ws.labels[i, j] > 0 and ws.mask[i, j] > 0]
    rows.sort(key=lambda i: p[i])
    return [
        {
            "score": round(float(p[i]), 4),
            "text": valid.convs[int(ws.conv_index[i])].turns[int(ws.turn_index[i])].text[:120],
        }
        for i in rows[:12]
    ]


def finetune_run(
    splits,
    seed: int,
    overrides: dict[str, Any],
    cal,
    base,
    datasets: Path,
    contrast: Path,
    dump: str | None = None,
    topical_limit: int | None = None,
) -> dict[str, Any]:
    """Fine-tune with the train config plus `overrides` (dotted keys), then judge like the other variants."""
    import copy

    from pipeline.common.config import load_config, typed
    from pipeline.model.config import TrainConfig
    from pipeline.model.modeling import predict_logits
    from pipeline.model.training import fit
    from pipeline.model.windows import build_windows
    from serving.window import WindowEncoder

    raw = copy.deepcopy(load_config("train", "default"))
    for key, value in {**overrides, "optim.seed": seed}.items():
        sec, _, name = key.partition(".")
        raw[sec][name] = value
    cfg = typed(TrainConfig, raw, "train")
    t0 = time.perf_counter()
    res = fit(splits["train"], splits["valid"], cfg, progress=False)
    train_s = time.perf_counter() - t0
    enc = WindowEncoder(res.tokenizer, res.spec)
    scored = {}
    for n in ("valid", "test"):
        ws = build_windows(splits[n], enc, keep_unscored=True)
        scored[n] = Scored(splits[n], ws, predict_logits(res.model, ws, pad_id=enc.pad_id))
    raw = RawScores(torch_raw(res.model, enc))
    run = {"seed": seed, "overrides": overrides, "train_seconds": round(train_s), "train_windows": res.train_windows}
    run.update(judge_all(raw, scored["valid"], scored["test"], cal, base, datasets, contrast, topical_limit))
    if dump:
        import pickle

        payload = {"memo": raw.memo, "logits": {n: scored[n].logits for n in scored}}
        Path(dump).write_bytes(pickle.dumps(payload))
    return run


def bundle_scorer(bundle: str):
    from pipeline.evaluation.transfer import guard_scorer
    from serving.guard import Guard

    guard = Guard.load(bundle)
    return guard, guard_scorer(guard)


def _parse_args(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--splits", default="data/splits")
    ap.add_argument("--datasets", default="../shared/datasets")
    ap.add_argument("--contrast", default="data/probes/contrast.yaml")
    ap.add_argument("--variant", choices=("bundle", "frozen", "finetune", "replay"), default="frozen")
    ap.add_argument("--set", nargs="*", default=[], help="finetune: train-config overrides, section.key=yaml-value")
    ap.add_argument("--bundle", default="models/bundle")
    ap.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15])
    ap.add_argument("--cache", default="/tmp/eg-embeddings.npz")
    ap.add_argument("--out", default=None)
    ap.add_argument("--dump", default=None, help="finetune: pickle of every raw logit, e.g. /tmp/ft-{seed}.pkl")
    ap.add_argument("--from-dump", default=None, help="replay: skip the model, read these raw logits")
    ap.add_argument("--topical-limit", type=int, default=None, help="score only this many Topical-Chat test chats")
    return ap.parse_args(argv)


def _judge_scorer(score, policy: PolicyConfig, datasets: Path, contrast: Path, topical_limit: int | None) -> dict:
    """Real text, zero-shot ConvAbuse and contrast turns for one calibrated scorer under `policy`."""
    abuse = policy.thresholds["abuse"]
    run = {"real": real_text(score, policy, datasets, contrast, abuse, topical_limit)}
    run["convabuse_zero_shot"] = convabuse_zero_shot(score, datasets, abuse)
    run["contrast_turns"] = contrast_turns(score, contrast, policy.thresholds)
    return run


def _run_replay(args, cal, base, datasets: Path, contrast: Path) -> dict[str, Any]:
    """Everything after the model, from a --dump of raw logits."""
    import pickle

    payload = pickle.loads(Path(args.from_dump).read_bytes())
    splits = {n: read_split(split_path(args.splits, n)) for n in ("valid", "test")}
    scored = {n: Scored(splits[n], turn_set_windows(splits[n]), payload["logits"][n]) for n in splits}
    raw = RawScores(None)
    raw.memo = payload["memo"]
    return judge_all(raw, scored["valid"], scored["test"], cal, base, datasets, contrast, args.topical_limit)


def _run_finetune(args, cal, base, datasets: Path, contrast: Path, results: dict[str, Any]) -> None:
    """One fine-tune per seed; results written after each, since a run takes minutes."""
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    splits = {n: read_split(split_path(args.splits, n)) for n in ("train", "valid", "test")}
    for seed in args.seeds:
        dump = args.dump.format(seed=seed) if args.dump else None
        run = finetune_run(splits, seed, overrides, cal, base, datasets, contrast, dump, args.topical_limit)
        results["runs"].append(run)
        log.info("seed %d: %s", seed, json.dumps(summary(run)))
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


def _run_frozen(args, cal, base, datasets: Path, contrast: Path, results: dict[str, Any]) -> None:
    """Frozen MiniLM embeddings (cached) with an MLP head trained per seed."""
    import torch

    emb = Embedder(Path(args.cache))
    splits = {n: read_split(split_path(args.splits, n)) for n in ("train", "valid", "test")}
    sets = {n: turn_set(c) for n, c in splits.items()}
    t0 = time.perf_counter()
    x = {n: split_embeddings(emb, splits[n], sets[n]) for n in splits}
    log.info("embedded %s turns in %.0fs", {n: len(v) for n, v in x.items()}, time.perf_counter() - t0)
    for seed in args.seeds:
        net, feats = train_head(x["train"], sets["train"], x["valid"], sets["valid"], HeadConfig(), seed)
        with torch.no_grad():
            logits = {n: net(feats(x[n], sets[n])).numpy() for n in ("valid", "test")}
        valid, test = (Scored(splits[n], sets[n], logits[n]) for n in ("valid", "test"))
        c, syn = synthetic(valid, test, cal, base)
        score = frozen_scorer(net, feats, emb, c.temperatures)
        run = {"seed": seed, "synthetic": syn, **_judge_scorer(score, c.policy, datasets, contrast, args.topical_limit)}
        results["runs"].append(run)
        log.info("seed %d: %s", seed, json.dumps(summary(run)))


def main(argv=None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cal = section(CalibrationConfig, "policy", "calibration", "default")
    base = section(PolicyConfig.from_dict, "policy", "policy", "default")
    datasets, contrast = Path(args.datasets), Path(args.contrast)
    results: dict[str, Any] = {"variant": args.variant, "runs": []}
    if args.variant == "bundle":
        guard, score = bundle_scorer(args.bundle)
        results["runs"].append(_judge_scorer(score, guard.policy, datasets, contrast, args.topical_limit))
    elif args.variant == "replay":
        results["runs"].append(_run_replay(args, cal, base, datasets, contrast))
    elif args.variant == "finetune":
        _run_finetune(args, cal, base, datasets, contrast, results)
    else:
        _run_frozen(args, cal, base, datasets, contrast, results)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    for run in results["runs"]:
        print(json.dumps(summary(run)))
    return 0


def summary(run: dict[str, Any]) -> dict[str, Any]:
    out = {}
    if "synthetic" in run:
        s = run["synthetic"]
        out["syn"] = (
            f"FTR {s['false_terminations']} recall {s['terminated']}/{s['should_end']} early {s['early']} sh {s['self_harm_ended']}"
        )
    out["real"] = {k: f"{v.get('ended')}/{v.get('conversations')}" for k, v in run["real"].items()}
    out["convabuse"] = run["convabuse_zero_shot"]
    out["contrast"] = run["contrast_turns"]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
