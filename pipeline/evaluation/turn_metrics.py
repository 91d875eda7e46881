"""Turn-level metrics per label, counted only where the label applies to the turn's role (the mask).

Shared by train (per-epoch valid F1), evaluate, baseline and the real-profile experiment so the
transformer and its baselines are scored the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from serving.labels import MODEL_LABELS


def _prf(y: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    tp = float(np.sum(pred & y))
    fp = float(np.sum(pred & ~y))
    fn = float(np.sum(~pred & y))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def label_metrics(probs: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, Any]:
    """P/R/F1 at `threshold`, PR-AUC, ROC-AUC and the binary macro-F1 (mean F1 of both classes)."""
    yb = np.asarray(y) > 0.5
    pred = np.asarray(probs) >= threshold
    p, r, f = _prf(yb, pred)
    _, _, f_neg = _prf(~yb, ~pred)
    out: dict[str, Any] = {
        "n": int(len(yb)),
        "support": int(yb.sum()),
        "threshold": float(threshold),
        "precision": p,
        "recall": r,
        "f1": f,
        "macro_f1": (f + f_neg) / 2,
        "pr_auc": None,
        "roc_auc": None,
    }
    if 0 < yb.sum() < len(yb):
        out["pr_auc"] = float(average_precision_score(yb, probs))
        out["roc_auc"] = float(roc_auc_score(yb, probs))
    return out


def per_label(
    probs: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray,
    thresholds: Mapping[str, float],
    names: Sequence[str] = MODEL_LABELS,
) -> dict[str, dict[str, Any]]:
    """label_metrics for every label, over the rows where the label applies."""
    out = {}
    for j, name in enumerate(names):
        rows = mask[:, j] > 0
        if not rows.any():
            continue
        out[name] = label_metrics(probs[rows, j], labels[rows, j], thresholds.get(name, 0.5))
    return out


def macro_f1(metrics: Mapping[str, Mapping[str, Any]]) -> float:
    """Mean positive-class F1 over labels that have positives in the data."""
    vals = [m["f1"] for m in metrics.values() if m["support"] > 0]
    return float(np.mean(vals)) if vals else 0.0


def best_f1_threshold(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The threshold maximising F1 (midpoint between neighbouring scores, for robustness)."""
    yb = np.asarray(y) > 0.5
    if yb.sum() == 0:
        return 0.5, 0.0
    prec, rec, thr = precision_recall_curve(yb, probs)
    f = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.0)[:-1]
    i = int(np.argmax(f))
    t = float(thr[i])
    below = np.asarray(probs)[np.asarray(probs) < t]
    if below.size:
        t = float((t + below.max()) / 2)
    return t, float(f[i])


def threshold_for_recall(probs: np.ndarray, y: np.ndarray, min_recall: float) -> float:
    """The highest threshold that keeps recall >= min_recall (lower = more recall)."""
    yb = np.asarray(y) > 0.5
    pos = np.sort(np.asarray(probs)[yb])
    if pos.size == 0:
        return 0.5
    k = int(np.floor((1 - min_recall) * pos.size))  # positives we may miss
    return float(pos[k]) if k < pos.size else float(pos[-1])


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error with equal-width bins."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if probs.size == 0:
        return 0.0
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.sum() * abs(probs[sel].mean() - y[sel].mean())
    return float(total / probs.size)


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    """Per bin: mean predicted probability, observed frequency, count (reliability diagram data)."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            rows.append(
                {
                    "bin": b,
                    "predicted": float(probs[sel].mean()),
                    "observed": float(y[sel].mean()),
                    "count": int(sel.sum()),
                }
            )
    return rows
