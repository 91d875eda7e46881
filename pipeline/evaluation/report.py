"""Evaluation reports: scores per conversation, calibration error, the worst errors, timelines to draw, and
the flat metric names charted in MLflow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.evaluation.error_attribution import ERRORS
from pipeline.evaluation.thresholds import calibrated
from pipeline.evaluation.turn_metrics import ece
from pipeline.model.windows import WindowSet
from serving.calibration import scores_dicts
from serving.labels import MODEL_LABELS
from serving.schema import Conversation


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


def _conversation_error_kind(r: Mapping[str, Any]) -> str | None:
    """The conversation-level mistake a replay row shows, if any (a false end first, then a miss, then early)."""
    if r["ended"] and not r["should_end"]:
        return "false_termination"
    if r["should_end"] and not r["ended"]:
        return "missed_termination"
    if r["lateness"] is not None and r["lateness"] < 0:
        return "early_termination"
    return None


def _conversation_errors(
    conversations: Sequence[Conversation], replay_rows: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One row per conversation the policy got wrong, at the turn it ended (or should have)."""
    out: list[dict[str, Any]] = []
    by_id = {c.id: c for c in conversations}
    for r in replay_rows:
        kind = _conversation_error_kind(r)
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
    return out


def _turn_errors(
    conversations: Sequence[Conversation],
    ws: WindowSet,
    probs: np.ndarray,
    thresholds: Mapping[str, float],
    count: int,
) -> list[dict[str, Any]]:
    """The `count` most confident wrong (turn, label) calls at the thresholds, most confident first."""
    out: list[dict[str, Any]] = []
    err = np.where(ws.mask > 0, np.abs(probs - ws.labels), 0.0)
    thr = np.array([thresholds.get(n, 0.5) for n in MODEL_LABELS])
    wrong = (ws.mask > 0) & ((probs >= thr) != (ws.labels > 0.5))
    flat = np.argsort(-(err * wrong), axis=None)
    for k in flat[: max(0, count)]:
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
    out = _conversation_errors(conversations, replay_rows)
    # Worst first (false and early ends before misses), and at most half the table: turn errors explain them.
    rank = {"false_termination": 0, "early_termination": 1, "missed_termination": 2}
    out = sorted(out, key=lambda r: rank[r["kind"]])[: max(1, limit // 2)] if limit else out
    out += _turn_errors(conversations, ws, probs, thresholds, limit - len(out))
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


def strip_rows(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if k != "rows"}


def flat_metrics(ev: Mapping[str, Any], replay: Mapping[str, Any], gates: Mapping[str, Any]) -> dict[str, float]:
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
