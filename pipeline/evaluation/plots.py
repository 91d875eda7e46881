"""Evaluation plots: PNG for people, CSV/JSON under plots/data for `dvc plots`.

Rendered here (matplotlib, Agg) because `dvc plots show` HTML needs the internet for its charting scripts.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402

from pipeline.evaluation.turn_metrics import reliability  # noqa: E402
from serving.labels import MODEL_LABELS, USER_LABELS  # noqa: E402


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields))
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in fields})


def pr_curves(
    probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, png: Path, data_dir: Path, max_points: int = 200
) -> list[Path]:
    """One PR curve per label (test, calibrated scores); data: pr_<label>.csv (recall, precision, threshold)."""
    fig, ax = plt.subplots(figsize=(6, 5))
    written = []
    for j, name in enumerate(MODEL_LABELS):
        rows = mask[:, j] > 0
        y = labels[rows, j] > 0.5
        if not rows.any() or y.sum() == 0 or y.all():
            continue
        prec, rec, thr = precision_recall_curve(y, probs[rows, j])
        thr = np.append(thr, 1.0)
        keep = np.unique(np.linspace(0, len(prec) - 1, min(max_points, len(prec))).astype(int))
        ax.plot(rec, prec, label=name)
        path = data_dir / f"pr_{name}.csv"
        _write_csv(
            path,
            [
                {
                    "recall": round(float(rec[i]), 5),
                    "precision": round(float(prec[i]), 5),
                    "threshold": round(float(thr[i]), 5),
                }
                for i in keep
            ],
            ["recall", "precision", "threshold"],
        )
        written.append(path)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_title("Precision-recall per label (test)")
    ax.legend(loc="lower left")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return written


def primary_class(vec: Sequence[float]) -> str:
    """A user turn's class for the confusion matrix: its first user label in MODEL_LABELS order, or benign."""
    for name in USER_LABELS:
        if vec[MODEL_LABELS.index(name)] > 0.5:
            return name
    return "benign"


def confusion(actual: Sequence[str], predicted: Sequence[str], png: Path, csv_path: Path) -> dict[str, dict[str, int]]:
    """User-turn confusion matrix over {benign, user labels}; CSV rows (actual, predicted) for DVC's template."""
    classes = ["benign", *USER_LABELS]
    m = np.zeros((len(classes), len(classes)), dtype=int)
    for a, p in zip(actual, predicted, strict=True):
        m[classes.index(a), classes.index(p)] += 1
    _write_csv(
        csv_path,
        [{"actual": a, "predicted": p} for a, p in zip(actual, predicted, strict=True)],
        ["actual", "predicted"],
    )
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(np.log1p(m), cmap="Blues")
    for i in range(len(classes)):
        for k in range(len(classes)):
            ax.text(k, i, str(m[i, k]), ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("User turns (test), first label")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return {a: {p: int(m[i, k]) for k, p in enumerate(classes)} for i, a in enumerate(classes)}


def reliability_plot(
    before: np.ndarray, after: np.ndarray, labels: np.ndarray, mask: np.ndarray, png: Path, data_dir: Path, bins: int
) -> None:
    """Reliability diagram pooled over labels (masked cells), before and after temperature scaling."""
    rows = mask > 0
    y = labels[rows]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    for name, p in (("uncalibrated", before[rows]), ("calibrated", after[rows])):
        rel = reliability(p, y, bins)
        _write_csv(data_dir / f"reliability_{name}.csv", rel, ["bin", "predicted", "observed", "count"])
        ax.plot([r["predicted"] for r in rel], [r["observed"] for r in rel], marker="o", label=name)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title("Reliability (test, all labels)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def timelines(
    examples: Sequence[Mapping[str, Any]], png: Path, json_path: Path, thresholds: Mapping[str, float]
) -> None:
    """Per-turn user scores of a few test conversations, with the policy's end and the gold end_at marked.

    Each example: {"id", "category", "roles", "scores": [{label: p}], "end_turn", "end_at", "reason"}.
    """
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(list(examples), indent=1) + "\n")
    n = max(1, len(examples))
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.2 * n), squeeze=False)
    for ax, ex in zip(axes[:, 0], examples, strict=False):
        pairs = list(zip(ex["roles"], ex["scores"], strict=True))
        users = [i for i, (r, _) in enumerate(pairs) if r == "user"]
        for name in USER_LABELS:
            ax.plot(users, [pairs[i][1].get(name, np.nan) for i in users], marker="o", ms=3, label=name)
        bots = [i for i, (r, _) in enumerate(pairs) if r == "assistant"]
        red = [pairs[i][1].get("redirect", np.nan) for i in bots]
        ax.plot(bots, red, marker="x", ls="none", color="grey", label="redirect (assistant)")
        if ex.get("end_at") is not None:
            ax.axvline(ex["end_at"], color="green", ls="--", lw=1.5, label="gold end_at")
        if ex.get("end_turn") is not None:
            ax.axvline(ex["end_turn"], color="red", lw=2, label=f"ended ({ex.get('reason')})")
        ax.axhline(thresholds.get("abuse", 0.5), color="black", lw=0.5, ls=":")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{ex['id']} ({ex['category']})", fontsize=9)
        ax.set_ylabel("score")
    axes[0, 0].legend(fontsize=7, ncol=3, loc="upper left")
    axes[-1, 0].set_xlabel("turn")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
