"""`evaluate` stage: the model judged by the decisions it drives.

    python -m pipeline.stages.evaluate [--splits data/splits] [--checkpoint models/checkpoint] [--profile smoke]

On valid: fit a temperature per label, choose thresholds, tune the policy's thresholds by replaying the
valid conversations to the target false-termination rate -> models/thresholds.json. On test: turn-level
metrics per label, calibration (ECE before/after), and every conversation replayed turn by turn through
`serving.policy` (false terminations, termination recall, lateness, reason codes, per category). Writes
metrics/eval.json, metrics/replay.json, metrics/gates.json, plots, a worst-errors table; logs all of it to
the training run in MLflow, registers the model (alias `candidate`; `champion` only when every gate
passes), and fails when a gate fails unless `gates.enforce` is false.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.config import ConfigError, active_profile, load_config
from pipeline.data.split_files import read_split, split_path
from pipeline.evaluation.error_attribution import ERRORS, HEADS, attribute_all
from pipeline.evaluation.gates import check_gates, gates_report, log_gates
from pipeline.evaluation.logits import checkpoint_fingerprint, save_test_logits
from pipeline.evaluation.replay_metrics import conversation_metrics
from pipeline.evaluation.thresholds import (
    calibrated,
    fit_temperatures,
    label_thresholds,
    replay_all,
    tune_policy_thresholds,
)
from pipeline.evaluation.turn_metrics import ece, macro_f1, per_label
from pipeline.model.windows import WindowSet, build_windows
from serving.calibration import scores_dicts
from serving.labels import MODEL_LABELS
from serving.policy import PolicyConfig
from serving.schema import Conversation
from serving.window import WindowEncoder, WindowSpec

log = logging.getLogger("pipeline.stages.evaluate")


def conversation_scores(
    conversations: Sequence[Conversation], ws: WindowSet, probs: np.ndarray
) -> list[list[dict[str, float]]]:
    """Per conversation, one score dict per turn ({} for system turns): the policy's input."""
    out: list[list[dict[str, float]]] = [[{} for _ in c.turns] for c in conversations]
    for row, d in enumerate(scores_dicts(probs)):
        out[int(ws.conv_index[row])][int(ws.turn_index[row])] = d
    return out


def calibration_report(logits: np.ndarray, ws: WindowSet, temps: Mapping[str, float], bins: int) -> dict[str, Any]:
    before = calibrated(logits, {})
    after = calibrated(logits, temps)
    out: dict[str, Any] = {}
    for j, name in enumerate(MODEL_LABELS):
        rows = ws.mask[:, j] > 0
        if rows.any():
            out[name] = {
                "ece_before": ece(before[rows, j], ws.labels[rows, j], bins),
                "ece_after": ece(after[rows, j], ws.labels[rows, j], bins),
            }
    m = ws.mask > 0
    out["all"] = {"ece_before": ece(before[m], ws.labels[m], bins), "ece_after": ece(after[m], ws.labels[m], bins)}
    return out


def worst_errors(
    conversations: Sequence[Conversation],
    ws: WindowSet,
    probs: np.ndarray,
    thresholds: Mapping[str, float],
    replay_rows: Sequence[Mapping[str, Any]],
    limit: int,
) -> list[dict[str, Any]]:
    """Conversation-level mistakes first (early/false ends, missed ends), then the most confident turn errors."""
    out: list[dict[str, Any]] = []
    by_id = {c.id: c for c in conversations}
    for r in replay_rows:
        kind = None
        if r["ended"] and not r["should_end"]:
            kind = "false_termination"
        elif r["should_end"] and not r["ended"]:
            kind = "missed_termination"
        elif r["lateness"] is not None and r["lateness"] < 0:
            kind = "early_termination"
        if kind:
            c = by_id[r["id"]]
            t = r["end_turn"] if r["end_turn"] is not None else r["end_at"]
            out.append(
                {
                    "kind": kind,
                    "conversation_id": r["id"],
                    "category": r["category"],
                    "turn": t,
                    "role": c.turns[t].role if t is not None else "",
                    "label": r["reason"] or "",
                    "gold": str(r["end_at"]),
                    "score": float("nan"),
                    "text": c.turns[t].text[:200] if t is not None else "",
                }
            )
    # Worst first (false and early ends before misses), and at most half the table: turn errors explain them.
    rank = {"false_termination": 0, "early_termination": 1, "missed_termination": 2}
    out = sorted(out, key=lambda r: rank[r["kind"]])[: max(1, limit // 2)] if limit else out
    err = np.where(ws.mask > 0, np.abs(probs - ws.labels), 0.0)
    thr = np.array([thresholds.get(n, 0.5) for n in MODEL_LABELS])
    wrong = (ws.mask > 0) & ((probs >= thr) != (ws.labels > 0.5))
    flat = np.argsort(-(err * wrong), axis=None)
    for k in flat[: max(0, limit - len(out))]:
        i, j = np.unravel_index(k, err.shape)
        if not wrong[i, j]:
            break
        c = conversations[int(ws.conv_index[i])]
        t = int(ws.turn_index[i])
        out.append(
            {
                "kind": "false_positive" if ws.labels[i, j] < 0.5 else "false_negative",
                "conversation_id": c.id,
                "category": c.category or "",
                "turn": t,
                "role": c.turns[t].role,
                "label": MODEL_LABELS[j],
                "gold": str(int(ws.labels[i, j])),
                "score": round(float(probs[i, j]), 4),
                "text": c.turns[t].text[:200],
            }
        )
    return out[:limit] if limit else out


def pick_timelines(replay_rows: Sequence[Mapping[str, Any]], n: int) -> list[int]:
    """Indices of a few conversations to draw: mistakes first, then one per category."""
    chosen: list[int] = []
    for pred in (
        lambda r: r["ended"] and not r["should_end"],
        lambda r: r["should_end"] and not r["ended"],
        lambda r: r["should_end"] and r["ended"],
    ):
        for i, r in enumerate(replay_rows):
            if len(chosen) < n and pred(r) and i not in chosen:
                chosen.append(i)
                break
    seen = {replay_rows[i]["category"] for i in chosen}
    for i, r in enumerate(replay_rows):
        if len(chosen) >= n:
            break
        if r["category"] not in seen:
            chosen.append(i)
            seen.add(r["category"])
    return chosen


def _strip_rows(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if k != "rows"}


def _flat_metrics(ev: Mapping[str, Any], replay: Mapping[str, Any], gates: Mapping[str, Any]) -> dict[str, float]:
    """The numbers worth charting in MLflow, with dotted names."""
    out: dict[str, float] = {"test.macro_f1": ev["macro_f1"]}
    for name, m in ev["turn"].items():
        for k in ("precision", "recall", "f1", "pr_auc", "roc_auc"):
            if m.get(k) is not None:
                out[f"test.{name}.{k}"] = m[k]
    for name, m in ev["calibration"]["valid"].items():
        out[f"valid.{name}.ece_before"] = m["ece_before"]
        out[f"valid.{name}.ece_after"] = m["ece_after"]
    ov = replay["overall"]
    for k in ("false_termination_rate", "termination_recall", "early_terminations", "lateness_median", "lateness_mean"):
        if ov.get(k) is not None:
            out[f"replay.{k}"] = ov[k]
    out["replay.self_harm_ended"] = replay["self_harm_ended"]
    out["replay.self_harm_ended_after_risk"] = replay["self_harm_ended_after_risk"]
    for cat, m in replay["per_category"].items():
        out[f"replay.{cat}.false_termination_rate"] = m["false_termination_rate"]
        if m.get("termination_recall") is not None:
            out[f"replay.{cat}.termination_recall"] = m["termination_recall"]
    attribution = replay.get("error_attribution") or {}
    for kind in ERRORS:
        for k, v in (attribution.get(kind) or {}).get("overall", {}).items():
            out[f"replay.errors.{kind}.{k}"] = v
    out["gates.passed"] = float(gates["passed"])
    return out


def load_logits_cache(path: Path, fingerprint: str, n_valid: int, n_test: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(valid, test) logits from a `--logits-cache` file, or None when it was written for another checkpoint
    (`fingerprint`: pipeline.evaluation.logits.checkpoint_fingerprint) or other splits. Why: a stale cache once fed
    last run's logits to new splits and failed deep in calibration."""
    if not path.is_file():
        return None
    with np.load(path) as z:
        if "checkpoint" not in z or str(z["checkpoint"]) != fingerprint:
            log.info("%s: written for another checkpoint; re-scoring", path)
            return None
        if len(z["valid"]) != n_valid or len(z["test"]) != n_test:
            log.info("%s: written for other splits; re-scoring", path)
            return None
        return z["valid"], z["test"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="data/splits")
    parser.add_argument("--checkpoint", default="models/checkpoint")
    parser.add_argument("--thresholds", default="models/thresholds.json", help="output: calibrated thresholds")
    parser.add_argument("--baseline", default="metrics/baseline.json", help="input: the baseline stage's metrics")
    parser.add_argument("--metrics-dir", default="metrics")
    parser.add_argument("--plots-dir", default="plots/eval", help="PNG plots")
    parser.add_argument("--plots-data", default="plots/data/eval", help="plot data for dvc plots")
    parser.add_argument("--errors", default="metrics/worst_errors.csv")
    parser.add_argument(
        "--test-logits", default="models/test_logits.npz", help="output: PyTorch test logits for export's parity"
    )
    parser.add_argument("--profile", default=None)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--logits-cache", default=None, help="npz to reuse/save raw logits (development only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t_start = time.perf_counter()

    profile = args.profile or active_profile()
    ecfg = load_config("eval", profile).get("evaluate") or {}
    pcfg = load_config("policy", profile)
    gcfg = load_config("gates", profile).get("gates")
    tcfg = load_config("train", profile)
    cal = pcfg.get("calibration") or {}
    if not isinstance(gcfg, Mapping):
        raise ConfigError("configs/gates.yaml: `gates` section missing")
    if "target_false_termination_rate" not in cal:
        raise ConfigError("configs/policy.yaml: calibration.target_false_termination_rate missing")
    try:
        base_policy = PolicyConfig.from_dict(pcfg.get("policy") or {})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"configs/policy.yaml policy: {exc}") from None
    ckpt = Path(args.checkpoint)
    if not (ckpt / "train_info.json").exists():
        raise ConfigError(f"{ckpt}/train_info.json not found: run train first")
    info = json.loads((ckpt / "train_info.json").read_text())

    import torch

    from pipeline.model.modeling import load_checkpoint, predict_logits
    from pipeline.stages.train import num_threads

    torch.set_num_threads(num_threads(tcfg.get("runtime", {})))
    model = load_checkpoint(ckpt)
    spec = WindowSpec.from_dict(json.loads((ckpt / "window.json").read_text()))
    encoder = WindowEncoder.from_file(str(ckpt / "tokenizer.json"), spec)
    subset = info.get("label_subset")
    valid = read_split(split_path(args.splits, "valid"))
    test = read_split(split_path(args.splits, "test"))
    vws = build_windows(valid, encoder, label_subset=subset, keep_unscored=True)
    tws = build_windows(test, encoder, label_subset=subset, keep_unscored=True)
    bs = int(ecfg.get("batch_size", 64))
    t0 = time.perf_counter()
    cache = Path(args.logits_cache) if args.logits_cache else None
    fingerprint = checkpoint_fingerprint(ckpt) if cache else ""  # hashed once: 91 MB
    cached = load_logits_cache(cache, fingerprint, len(vws), len(tws)) if cache else None
    if cached is not None:  # development aid: re-tune thresholds without re-scoring
        vlog, tlog = cached
    else:
        vlog = predict_logits(model, vws, batch_size=bs, pad_id=encoder.pad_id, progress="score valid")
        tlog = predict_logits(model, tws, batch_size=bs, pad_id=encoder.pad_id, progress="score test")
        if cache:
            np.savez(cache, valid=vlog, test=tlog, checkpoint=np.asarray(fingerprint))
    score_s = time.perf_counter() - t0
    save_test_logits(
        args.test_logits,
        tlog,
        [(test[int(c)].id, int(t)) for c, t in zip(tws.conv_index, tws.turn_index, strict=True)],
        ckpt,
    )
    log.info("scored %d valid + %d test windows in %.1fs", len(vws), len(tws), score_s)

    # --- calibration and thresholds on valid
    bins = int(ecfg.get("ece_bins", 15))
    temps = fit_temperatures(vlog, vws.labels, vws.mask)
    vprob, tprob = calibrated(vlog, temps), calibrated(tlog, temps)
    # Turn-level metrics use F1-optimal thresholds for every label (as the baseline does); the policy starts
    # from these with self_harm_risk set for recall, then is tuned by replay.
    f1_thr = label_thresholds(
        vprob, vws.labels, vws.mask, {**cal, "self_harm_min_recall": 0.0, "self_harm_max_threshold": 1.0}
    )
    turn_thr = label_thresholds(vprob, vws.labels, vws.mask, cal)
    if subset:  # heads outside the trained subset are untrained noise: they must never fire
        turn_thr = {k: (v if k in subset else 1.0) for k, v in turn_thr.items()}
        keep = []
        for entry in cal.get("tuned_labels", []):
            names = [n for n in ([entry] if isinstance(entry, str) else entry) if n in subset]
            if names:
                keep.append(names if len(names) > 1 else names[0])
        cal = {**cal, "tuned_labels": keep}
    vscores = conversation_scores(valid, vws, vprob)
    policy_thr, vsum, trace = tune_policy_thresholds(base_policy, valid, vscores, turn_thr, cal)
    policy = base_policy.with_thresholds(policy_thr)
    target = float(cal["target_false_termination_rate"])
    thresholds_doc = {
        "thresholds": dict(policy.thresholds),
        "temperatures": temps,
        "policy": policy.to_dict(),
        "target_false_termination_rate": target,
        "valid_false_termination_rate": vsum.ftr,
        "valid_termination_recall": vsum.recall,
        "turn_thresholds": f1_thr,
    }
    Path(args.thresholds).parent.mkdir(parents=True, exist_ok=True)
    Path(args.thresholds).write_text(json.dumps(thresholds_doc, indent=2) + "\n")
    log.info("valid replay at chosen thresholds: %s", vsum.to_dict())

    # --- test: turn level and conversation replay
    turn = per_label(tprob, tws.labels, tws.mask, f1_thr)
    turn_at_policy = per_label(tprob, tws.labels, tws.mask, policy.thresholds)
    tscores = conversation_scores(test, tws, tprob)
    test_actions = replay_all(policy, test, tscores)
    replay = conversation_metrics(test, test_actions)
    heads = [h for h, (_, labels) in HEADS.items() if not subset or set(labels) & set(subset)]
    attribution = attribute_all(policy, test, tscores, heads)
    replay["error_attribution"] = {k: v for k, v in attribution.items() if k != "rows"}
    baseline = json.loads(Path(args.baseline).read_text()) if Path(args.baseline).exists() else None
    ev = {
        "macro_f1": macro_f1(turn),
        "turn": turn,
        "turn_at_policy_thresholds": turn_at_policy,
        "calibration": {
            "temperatures": temps,
            "valid": calibration_report(vlog, vws, temps, bins),
            "test": calibration_report(tlog, tws, temps, bins),
        },
        "valid_replay": vsum.to_dict(),
        "baseline_macro_f1": None if baseline is None else baseline.get("macro_f1"),
        "windows": {"valid": len(vws), "test": len(tws)},
        "scoring_windows_per_s": (len(vws) + len(tws)) / max(score_s, 1e-9),
    }
    gates = check_gates(replay, ev["macro_f1"], baseline, gcfg, target)
    log_gates(gates)
    enforce = bool(gcfg.get("enforce", True))
    grep = gates_report(gates, enforce)

    # --- files
    md = Path(args.metrics_dir)
    md.mkdir(parents=True, exist_ok=True)
    (md / "eval.json").write_text(json.dumps(ev, indent=2) + "\n")
    (md / "replay.json").write_text(json.dumps(_strip_rows(replay), indent=2) + "\n")
    (md / "gates.json").write_text(json.dumps(grep, indent=2) + "\n")
    errors = worst_errors(test, tws, tprob, f1_thr, replay["rows"], int(ecfg.get("worst_errors", 50)))
    import pandas as pd

    err_df = pd.DataFrame(
        errors, columns=["kind", "conversation_id", "category", "turn", "role", "label", "gold", "score", "text"]
    )
    Path(args.errors).parent.mkdir(parents=True, exist_ok=True)
    err_df.to_csv(args.errors, index=False)

    from pipeline.evaluation import plots

    pdir, ddir = Path(args.plots_dir), Path(args.plots_data)
    pdir.mkdir(parents=True, exist_ok=True)
    ddir.mkdir(parents=True, exist_ok=True)
    plots.pr_curves(tprob, tws.labels, tws.mask, pdir / "pr_curves.png", ddir)
    user = np.array([r == "user" for r in tws.roles]) & (tws.mask.sum(axis=1) > 0)
    thr_vec = np.array([f1_thr[n] for n in MODEL_LABELS])
    confusion = plots.confusion(
        [plots.primary_class(v) for v in tws.labels[user]],
        [plots.primary_class((p >= thr_vec).astype(float)) for p in tprob[user]],
        pdir / "confusion.png",
        ddir / "confusion.csv",
    )
    plots.reliability_plot(calibrated(tlog, {}), tprob, tws.labels, tws.mask, pdir / "reliability.png", ddir, bins)
    examples = []
    for i in pick_timelines(replay["rows"], int(ecfg.get("timelines", 6))):
        r = replay["rows"][i]
        examples.append(
            {
                "id": r["id"],
                "category": r["category"],
                "roles": [t.role for t in test[i].turns],
                "scores": [{k: round(v, 4) for k, v in s.items()} for s in tscores[i]],
                "end_turn": r["end_turn"],
                "end_at": r["end_at"],
                "reason": r["reason"],
            }
        )
    plots.timelines(examples, pdir / "timelines.png", ddir / "timelines.json", policy.thresholds)
    (ddir / "threshold_search.json").write_text(json.dumps(trace, indent=1) + "\n")
    (ddir / "confusion_matrix.json").write_text(json.dumps(confusion, indent=1) + "\n")
    (ddir / "error_attribution.json").write_text(json.dumps(attribution["rows"], indent=1) + "\n")
    missed = attribution["missed"]["overall"]
    log.info(
        "missed test ends (%d) fixed by one correct head alone: %s; needing several: %d",
        missed["errors"],
        ", ".join(f"{h} {missed[f'fixed_by_{h}']}" for h in heads),
        missed["needs_several"],
    )

    ov = replay["overall"]
    log.info(
        "test: macro-F1 %.3f (baseline %s); replay FTR %.4f, recall %s, early %d, median lateness %s, self-harm ended %d",
        ev["macro_f1"],
        "n/a" if baseline is None else f"{baseline.get('macro_f1', float('nan')):.3f}",
        ov["false_termination_rate"],
        ov["termination_recall"],
        ov["early_terminations"],
        ov["lateness_median"],
        replay["self_harm_ended"],
    )

    # --- MLflow: resume the training run
    run_id = info.get("mlflow_run_id")
    if run_id and not args.no_mlflow:
        _log_to_mlflow(run_id, ckpt, args, ev, replay, grep, baseline, err_df, pdir, thresholds_doc)
    log.info("evaluate done in %.1fs", time.perf_counter() - t_start)
    if not grep["passed"]:
        msg = "; ".join(g.message() for g in gates if not g.passed)
        if enforce:
            print(f"quality gates failed: {msg}", flush=True)
            return 1
        log.warning("quality gates failed (not enforced): %s", msg)
    return 0


def _log_to_mlflow(run_id, ckpt, args, ev, replay, grep, baseline, err_df, pdir, thresholds_doc) -> None:
    import mlflow

    from pipeline.common import tracking

    with tracking.start_or_resume_run(run_id, log_system_metrics=False):
        tracking.log_metrics(_flat_metrics(ev, replay, grep))
        if baseline is not None:
            flat = {"baseline.tfidf_lr.macro_f1": baseline.get("macro_f1")}
            for name, m in (baseline.get("tfidf_lr", {}).get("per_label") or {}).items():
                flat[f"baseline.tfidf_lr.{name}.f1"] = m["f1"]
            for kind, m in (baseline.get("profanity_check") or {}).items():
                flat[f"baseline.profanity_check.{kind}.abuse_f1"] = m["f1"]
                flat[f"baseline.profanity_check.{kind}.abuse_macro_f1"] = m["macro_f1"]
            tracking.log_metrics(flat)
            tracking.retry(mlflow.log_artifact, args.baseline, "metrics")
        for name in ("eval.json", "replay.json", "gates.json"):
            tracking.retry(mlflow.log_artifact, str(Path(args.metrics_dir) / name), "metrics")
        tracking.retry(mlflow.log_artifacts, str(pdir), "plots")
        tracking.retry(mlflow.log_artifact, str(Path(args.plots_data) / "error_attribution.json"), "metrics")
        tracking.retry(mlflow.log_table, err_df, "worst_errors.json")
        tracking.retry(mlflow.set_tags, {"gates_passed": str(grep["passed"]).lower(), "evaluated": "true"})
        tracking.retry(mlflow.log_artifacts, str(ckpt), "model")
        tracking.retry(mlflow.log_dict, thresholds_doc, "model/thresholds.json")
        version = tracking.register_model(run_id, "model", champion=bool(grep["passed"]))
        tracking.retry(mlflow.set_tag, "registered_version", version)
        log.info(
            "MLflow run %s: registered %s version %s (candidate%s)",
            run_id,
            tracking.MODEL_NAME,
            version,
            ", champion" if grep["passed"] else "",
        )


if __name__ == "__main__":
    raise SystemExit(main())
