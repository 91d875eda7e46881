"""`evaluate` stage: the model judged by the decisions it drives.

    python -m pipeline.stages.evaluate [--splits data/splits] [--checkpoint models/checkpoint] [--profile smoke]

On valid: fit a temperature per label, choose thresholds, tune the policy's thresholds by replaying the
valid conversations to the target false-termination rate -> models/thresholds.json. On test: turn-level
metrics per label, calibration (ECE before/after), and every conversation replayed turn by turn through
`serving.policy` (false terminations, termination recall, lateness, reason codes, per category). Writes
metrics/eval.json, metrics/replay.json, metrics/gates.json, plots, a worst-errors table, and the test logits
export's parity check reuses; logs all of it to the training run in MLflow with the gate verdict as the run's
description and the headline numbers under `headline/` (pipeline/evaluation/summary.py), and fails when a gate
fails unless `gates.enforce` is false. The `register` stage registers the scorer (the bundle) after export.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.cli import run_stage
from pipeline.common.config import ConfigError, active_profile, section
from pipeline.data.split_files import read_split, split_path
from pipeline.evaluation.config import CalibrationConfig, EvaluateConfig, GatesConfig
from pipeline.evaluation.error_attribution import HEADS, attribute_all
from pipeline.evaluation.gates import check_gates, gates_report, log_gates
from pipeline.evaluation.logits import save_test_logits
from pipeline.evaluation.replay_metrics import conversation_metrics
from pipeline.evaluation.report import (
    calibration_report,
    conversation_scores,
    flat_metrics,
    pick_timelines,
    strip_rows,
    worst_errors,
)
from pipeline.evaluation.summary import log_summary
from pipeline.evaluation.thresholds import (
    calibrated,
    fit_temperatures,
    label_thresholds,
    replay_all,
    tune_policy_thresholds,
)
from pipeline.evaluation.turn_metrics import macro_f1, per_label
from pipeline.model.config import RuntimeConfig
from pipeline.model.windows import WindowSet, build_windows
from serving.labels import MODEL_LABELS
from serving.policy import PolicyConfig
from serving.schema import Conversation
from serving.window import WindowEncoder, WindowSpec

log = logging.getLogger("pipeline.stages.evaluate")
#: The params this stage reads (dvc.yaml lists the same): (configs/<file>.yaml, section) -> its reader.
PARAMS = {
    ("eval", "evaluate"): EvaluateConfig,
    ("policy", "policy"): PolicyConfig.from_dict,
    ("policy", "calibration"): CalibrationConfig,
    ("gates", "gates"): GatesConfig,
    ("train", "runtime"): RuntimeConfig,
}


@dataclass
class Scored:
    """One split's conversations, windows and raw logits."""

    convs: list[Conversation]
    ws: WindowSet
    logits: np.ndarray


def score_splits(
    args: argparse.Namespace, cfg: EvaluateConfig, runtime: RuntimeConfig
) -> tuple[dict, Scored, Scored, float]:
    """Score every valid and test window with the checkpoint (PyTorch, as trained)."""
    ckpt = Path(args.checkpoint)
    if not (ckpt / "train_info.json").exists():
        raise ConfigError(f"{ckpt}/train_info.json not found: run train first")
    info = json.loads((ckpt / "train_info.json").read_text())
    import torch

    from pipeline.model.modeling import load_checkpoint, predict_logits
    from pipeline.model.training import num_threads

    torch.set_num_threads(num_threads(runtime.num_threads))
    model = load_checkpoint(ckpt)
    encoder = WindowEncoder.from_file(
        str(ckpt / "tokenizer.json"), WindowSpec.from_dict(json.loads((ckpt / "window.json").read_text()))
    )
    t0 = time.perf_counter()
    out = []
    for name in ("valid", "test"):
        convs = read_split(split_path(args.splits, name))
        ws = build_windows(convs, encoder, label_subset=info.get("label_subset"), keep_unscored=True)
        logits = predict_logits(model, ws, batch_size=cfg.batch_size, pad_id=encoder.pad_id, progress=f"score {name}")
        out.append(Scored(convs, ws, logits))
    score_s = time.perf_counter() - t0
    valid, test = out
    keys = [(test.convs[int(c)].id, int(t)) for c, t in zip(test.ws.conv_index, test.ws.turn_index, strict=True)]
    save_test_logits(args.test_logits, test.logits, keys, ckpt)
    log.info("scored %d valid + %d test windows in %.1fs", len(valid.ws), len(test.ws), score_s)
    return info, valid, test, score_s


@dataclass
class Calibration:
    temperatures: dict[str, float]
    turn_thresholds: dict[str, float]  # F1-optimal per label: turn-level metrics
    policy: PolicyConfig
    document: dict[str, Any]  # models/thresholds.json
    valid_replay: Any
    trace: list[dict[str, Any]]


def calibrate(
    valid: Scored, base_policy: PolicyConfig, cal: CalibrationConfig, subset: Sequence[str] | None
) -> Calibration:
    """Temperatures per label, then the policy's thresholds tuned by replaying valid to the target FTR."""
    temps = fit_temperatures(valid.logits, valid.ws.labels, valid.ws.mask)
    vprob = calibrated(valid.logits, temps)
    ws = valid.ws
    # Turn-level metrics use F1-optimal thresholds for every label (as the baseline does); the policy starts
    # from these with self_harm_risk set for recall, then is tuned by replay.
    f1_thr = label_thresholds(
        vprob, ws.labels, ws.mask, dataclasses.replace(cal, self_harm_min_recall=0.0, self_harm_max_threshold=1.0)
    )
    start = label_thresholds(vprob, ws.labels, ws.mask, cal)
    if subset:  # heads outside the trained subset are untrained noise: they must never fire
        start = {k: (v if k in subset else 1.0) for k, v in start.items()}
        keep = []
        for entry in cal.tuned_labels:
            names = [n for n in ([entry] if isinstance(entry, str) else entry) if n in subset]
            if names:
                keep.append(names if len(names) > 1 else names[0])
        cal = dataclasses.replace(cal, tuned_labels=keep)
    vscores = conversation_scores(valid.convs, ws, vprob)
    policy_thr, vsum, trace = tune_policy_thresholds(base_policy, valid.convs, vscores, start, cal)
    policy = base_policy.with_thresholds(policy_thr)
    document = {
        "thresholds": dict(policy.thresholds),
        "temperatures": temps,
        "policy": policy.to_dict(),
        "target_false_termination_rate": cal.target_false_termination_rate,
        "valid_false_termination_rate": vsum.ftr,
        "valid_termination_recall": vsum.recall,
        "turn_thresholds": f1_thr,
    }
    log.info("valid replay at chosen thresholds: %s", vsum.to_dict())
    return Calibration(temps, f1_thr, policy, document, vsum, trace)


def judge_test(
    test: Scored,
    c: Calibration,
    subset: Sequence[str] | None,
    baseline: dict | None,
    bins: int,
    valid: Scored,
    score_s: float,
) -> dict[str, Any]:
    """Turn metrics and the replayed policy on test: eval.json's content, the replay, the error attribution."""
    tprob = calibrated(test.logits, c.temperatures)
    ws = test.ws
    tscores = conversation_scores(test.convs, ws, tprob)
    replay = conversation_metrics(test.convs, replay_all(c.policy, test.convs, tscores))
    heads = [h for h, (_, labels) in HEADS.items() if not subset or set(labels) & set(subset)]
    attribution = attribute_all(c.policy, test.convs, tscores, heads)
    replay["error_attribution"] = {k: v for k, v in attribution.items() if k != "rows"}
    turn = per_label(tprob, ws.labels, ws.mask, c.turn_thresholds)
    ev = {
        "macro_f1": macro_f1(turn),
        "turn": turn,
        "turn_at_policy_thresholds": per_label(tprob, ws.labels, ws.mask, c.policy.thresholds),
        "calibration": {
            "temperatures": c.temperatures,
            "valid": calibration_report(valid.logits, valid.ws, c.temperatures, bins),
            "test": calibration_report(test.logits, ws, c.temperatures, bins),
        },
        "valid_replay": c.valid_replay.to_dict(),
        "baseline_macro_f1": None if baseline is None else baseline.get("macro_f1"),
        "windows": {"valid": len(valid.ws), "test": len(ws)},
        "scoring_windows_per_s": (len(valid.ws) + len(ws)) / max(score_s, 1e-9),
    }
    missed = attribution["missed"]["overall"]
    log.info(
        "missed test ends (%d) fixed by one correct head alone: %s; needing several: %d",
        missed["errors"], ", ".join(f"{h} {missed[f'fixed_by_{h}']}" for h in heads), missed["needs_several"],
    )  # fmt: skip
    return {"ev": ev, "replay": replay, "attribution": attribution, "tprob": tprob, "tscores": tscores}


def write_plots(
    args: argparse.Namespace, test: Scored, c: Calibration, judged: dict[str, Any], cfg: EvaluateConfig
) -> None:
    from pipeline.evaluation import plots

    ws, tprob = test.ws, judged["tprob"]
    pdir, ddir = Path(args.plots_dir), Path(args.plots_data)
    pdir.mkdir(parents=True, exist_ok=True)
    ddir.mkdir(parents=True, exist_ok=True)
    plots.pr_curves(tprob, ws.labels, ws.mask, pdir / "pr_curves.png", ddir)
    user = np.array([r == "user" for r in ws.roles]) & (ws.mask.sum(axis=1) > 0)
    thr_vec = np.array([c.turn_thresholds[n] for n in MODEL_LABELS])
    confusion = plots.confusion(
        [plots.primary_class(v) for v in ws.labels[user]],
        [plots.primary_class((p >= thr_vec).astype(float)) for p in tprob[user]],
        pdir / "confusion.png",
        ddir / "confusion.csv",
        turn_thresholds=c.turn_thresholds,
    )
    plots.reliability_plot(
        calibrated(test.logits, {}), tprob, ws.labels, ws.mask, pdir / "reliability.png", ddir, cfg.ece_bins
    )
    rows = judged["replay"]["rows"]
    examples = [
        {
            "id": rows[i]["id"],
            "category": rows[i]["category"],
            "roles": [t.role for t in test.convs[i].turns],
            "scores": [{k: round(v, 4) for k, v in s.items()} for s in judged["tscores"][i]],
            "end_turn": rows[i]["end_turn"],
            "end_at": rows[i]["end_at"],
            "reason": rows[i]["reason"],
        }
        for i in pick_timelines(rows, cfg.timelines)
    ]
    plots.timelines(examples, pdir / "timelines.png", ddir / "timelines.json", c.policy.thresholds)
    (ddir / "threshold_search.json").write_text(json.dumps(c.trace, indent=1) + "\n")
    (ddir / "confusion_matrix.json").write_text(json.dumps(confusion, indent=1) + "\n")
    (ddir / "error_attribution.json").write_text(json.dumps(judged["attribution"]["rows"], indent=1) + "\n")


def write_metrics(
    args: argparse.Namespace, test: Scored, c: Calibration, judged: dict, grep: dict, cfg: EvaluateConfig
):
    """metrics/{eval,replay,gates}.json, models/thresholds.json and the worst-errors table; returns the table."""
    import pandas as pd

    Path(args.thresholds).parent.mkdir(parents=True, exist_ok=True)
    Path(args.thresholds).write_text(json.dumps(c.document, indent=2) + "\n")
    md = Path(args.metrics_dir)
    md.mkdir(parents=True, exist_ok=True)
    (md / "eval.json").write_text(json.dumps(judged["ev"], indent=2) + "\n")
    (md / "replay.json").write_text(json.dumps(strip_rows(judged["replay"]), indent=2) + "\n")
    (md / "gates.json").write_text(json.dumps(grep, indent=2) + "\n")
    errors = worst_errors(
        test.convs, test.ws, judged["tprob"], c.turn_thresholds, judged["replay"]["rows"], cfg.worst_errors
    )
    columns = ["kind", "conversation_id", "category", "turn", "role", "label", "gold", "score", "text"]
    err_df = pd.DataFrame(errors, columns=columns)
    Path(args.errors).parent.mkdir(parents=True, exist_ok=True)
    err_df.to_csv(args.errors, index=False)
    return err_df


def build_parser() -> argparse.ArgumentParser:
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t_start = time.perf_counter()
    profile = args.profile or active_profile()
    cfg = section(EvaluateConfig, "eval", "evaluate", profile)
    cal = section(CalibrationConfig, "policy", "calibration", profile)
    gcfg = section(GatesConfig, "gates", "gates", profile)
    base_policy = section(PolicyConfig.from_dict, "policy", "policy", profile)
    info, valid, test, score_s = score_splits(args, cfg, section(RuntimeConfig, "train", "runtime", profile))
    subset = info.get("label_subset")
    c = calibrate(valid, base_policy, cal, subset)
    baseline = json.loads(Path(args.baseline).read_text()) if Path(args.baseline).exists() else None
    judged = judge_test(test, c, subset, baseline, cfg.ece_bins, valid, score_s)
    ev, replay = judged["ev"], judged["replay"]
    gates = check_gates(replay, ev["macro_f1"], baseline, gcfg, cal.target_false_termination_rate)
    log_gates(gates)
    grep = gates_report(gates, gcfg.enforce)
    err_df = write_metrics(args, test, c, judged, grep, cfg)
    write_plots(args, test, c, judged, cfg)
    ov = replay["overall"]
    log.info(
        "test: macro-F1 %.3f (baseline %s); replay FTR %.4f, recall %s, early %d, median lateness %s, self-harm ended %d",
        ev["macro_f1"], "n/a" if baseline is None else f"{baseline.get('macro_f1', float('nan')):.3f}",
        ov["false_termination_rate"], ov["termination_recall"], ov["early_terminations"], ov["lateness_median"],
        replay["self_harm_ended"],
    )  # fmt: skip
    run_id = info.get("mlflow_run_id")
    if run_id and not args.no_mlflow:
        _log_to_mlflow(
            run_id, Path(args.checkpoint), args, ev, replay, grep, baseline, err_df, Path(args.plots_dir), c.document
        )
    log.info("evaluate done in %.1fs", time.perf_counter() - t_start)
    if not grep["passed"]:
        msg = "; ".join(g.message() for g in gates if not g.passed)
        if gcfg.enforce:
            print(f"quality gates failed: {msg}", flush=True)
            return 1
        log.warning("quality gates failed (not enforced): %s", msg)
    return 0


def _log_to_mlflow(run_id, ckpt, args, ev, replay, grep, baseline, err_df, pdir, thresholds_doc) -> None:
    import mlflow

    from pipeline.common import tracking

    with tracking.start_or_resume_run(run_id, log_system_metrics=False):
        tracking.log_metrics(flat_metrics(ev, replay, grep))
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
        tracking.retry(mlflow.log_artifacts, str(ckpt), "checkpoint")
        tracking.retry(mlflow.log_dict, thresholds_doc, "checkpoint/thresholds.json")
        log_summary(ev, replay, grep, baseline)
        log.info("MLflow run %s: gates %s", run_id, "passed" if grep["passed"] else "failed")


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
