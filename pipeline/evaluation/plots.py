"""Evaluation plots: PNG for people, CSV/JSON under plots/data for `dvc plots`.

Rendered here (matplotlib, Agg) because `dvc plots show` HTML needs the internet for its charting scripts.
Each plot must read on its own (issue #22): a title, axes with units, a legend that names every line and marker
and covers no data, and one colour per meaning (`LABEL_COLOURS` and the decision colours below).
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
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from sklearn.metrics import average_precision_score, precision_recall_curve  # noqa: E402

from pipeline.evaluation.turn_metrics import ece, reliability  # noqa: E402
from serving.labels import MODEL_LABELS, USER_LABELS  # noqa: E402

#: A label keeps one colour in every plot (its score and its threshold); no decision marker reuses one.
LABEL_COLOURS: dict[str, str] = {
    "harmful_request": "tab:blue",
    "abuse": "tab:orange",
    "end_request": "tab:cyan",
    "self_harm_risk": "tab:purple",
    "redirect": "tab:gray",
}
GOLD_END_COLOUR = "tab:green"  # the gold end_at
POLICY_END_COLOUR = "black"  # where the replayed policy ended the chat
FALSE_END_COLOUR = "tab:red"  # a false termination: ended a chat that should never end
EARLY_END_COLOUR = "tab:olive"  # ended before the gold end_at


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields))
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in fields})


def _save(fig: plt.Figure, png: Path, dpi: int) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=dpi)
    plt.close(fig)


def pr_curves(
    probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, png: Path, data_dir: Path, max_points: int = 200
) -> list[Path]:
    """One PR curve per label (test, calibrated scores); data: pr_<label>.csv (recall, precision, threshold).

    The legend carries each label's average precision and positive count, so a curve drawn from a handful of
    positives is not read like one drawn from hundreds.
    """
    fig, ax = plt.subplots(figsize=(7, 6.5), layout="constrained")
    written = []
    for j, name in enumerate(MODEL_LABELS):
        rows = mask[:, j] > 0
        y = labels[rows, j] > 0.5
        if not rows.any() or y.sum() == 0 or y.all():
            continue
        prec, rec, thr = precision_recall_curve(y, probs[rows, j])
        thr = np.append(thr, 1.0)
        keep = np.unique(np.linspace(0, len(prec) - 1, min(max_points, len(prec))).astype(int))
        ap = average_precision_score(y, probs[rows, j])
        role = "assistant" if name not in USER_LABELS else "user"
        ax.plot(
            rec,
            prec,
            color=LABEL_COLOURS[name],
            label=f"{name}: AP {ap:.3f}, {int(y.sum())} of {int(rows.sum())} {role} turns",
        )
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
    ax.set_xlabel("recall (share of gold-positive turns scored above the threshold)")
    ax.set_ylabel("precision (share of turns above the threshold that are gold-positive)")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_title("Precision-recall per label, test turns, calibrated scores\n(the curve sweeps the score threshold)")
    fig.legend(loc="outside lower center", fontsize=8, title="label: average precision, positives", title_fontsize=8)
    _save(fig, png, 110)
    return written


def primary_class(vec: Sequence[float]) -> str:
    """A user turn's single class for the confusion matrix: its first label (> 0.5) in USER_LABELS order, else benign.

    Turns are multi-label; a matrix needs one class per turn, so the order (harmful_request, abuse,
    end_request, self_harm_risk) decides: a turn both harmful and abusive counts as harmful_request.
    """
    for name in USER_LABELS:
        if vec[MODEL_LABELS.index(name)] > 0.5:
            return name
    return "benign"


def confusion(
    actual: Sequence[str],
    predicted: Sequence[str],
    png: Path,
    csv_path: Path,
    turn_thresholds: Mapping[str, float] | None = None,
) -> dict[str, dict[str, int]]:
    """User-turn confusion matrix over {benign, user labels}; CSV rows (actual, predicted) for DVC's template.

    Classes come from `primary_class`; the title says how, and `turn_thresholds` (the F1-optimal per-label
    thresholds that make a predicted label) go under the x axis, so the plot explains itself.
    """
    classes = ["benign", *USER_LABELS]
    m = np.zeros((len(classes), len(classes)), dtype=int)
    for a, p in zip(actual, predicted, strict=True):
        m[classes.index(a), classes.index(p)] += 1
    _write_csv(
        csv_path,
        [{"actual": a, "predicted": p} for a, p in zip(actual, predicted, strict=True)],
        ["actual", "predicted"],
    )
    fig, ax = plt.subplots(figsize=(8, 6.8))
    im = ax.imshow(np.log1p(m), cmap="Blues")
    totals = m.sum(axis=1)
    for i in range(len(classes)):
        for k in range(len(classes)):
            frac = m[i, k] / totals[i] if totals[i] else 0.0
            share = ("\n<1%" if 0 < frac < 0.005 else f"\n{frac:.0%}") if totals[i] else ""
            dark = np.log1p(m[i, k]) > 0.6 * np.log1p(m.max())
            ax.text(k, i, f"{m[i, k]}{share}", ha="center", va="center", fontsize=9, color="white" if dark else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), [f"{c} (n={t})" for c, t in zip(classes, totals, strict=True)])
    xlabel = "predicted class (a label is predicted when its calibrated score ≥ its turn threshold)"
    if turn_thresholds:
        xlabel += "\nturn thresholds (F1-optimal on valid):\n" + ", ".join(
            f"{n} {turn_thresholds[n]:.2f}" for n in USER_LABELS
        )
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel("gold class (n = user turns in the row)")
    order = " > ".join(USER_LABELS)
    ax.set_title(
        "User turns (test): gold vs predicted class; cells: count and share of the row\n"
        f"one class per turn: its first label in the order\n{order} (benign if none)",
        fontsize=9,
    )
    cbar = fig.colorbar(im, ax=ax, shrink=0.8)
    ticks = [t for t in (0, 1, 10, 100, 1000, 10000) if t <= max(1, m.max())]
    cbar.set_ticks(np.log1p(ticks), labels=[str(t) for t in ticks])
    cbar.set_label("user turns (log colour scale)")
    fig.tight_layout()
    _save(fig, png, 110)
    return {a: {p: int(m[i, k]) for k, p in enumerate(classes)} for i, a in enumerate(classes)}


def label_ece(
    before: np.ndarray, after: np.ndarray, labels: np.ndarray, mask: np.ndarray, bins: int
) -> dict[str, dict[str, float]]:
    """ECE per label (its masked cells) and pooled ("all"), uncalibrated and calibrated, plus the cell count.

    The same cells and `ece` as `report.calibration_report`, so the plot's numbers are metrics/eval.json's.
    """
    out: dict[str, dict[str, float]] = {}
    for j, name in enumerate(MODEL_LABELS):
        rows = mask[:, j] > 0
        if rows.any():
            y = labels[rows, j]
            out[name] = {
                "uncalibrated": ece(before[rows, j], y, bins),
                "calibrated": ece(after[rows, j], y, bins),
                "n": int(rows.sum()),
            }
    m = mask > 0
    out["all"] = {"uncalibrated": ece(before[m], labels[m], bins), "calibrated": ece(after[m], labels[m], bins)}
    out["all"]["n"] = int(m.sum())
    return out


def _reliability_panel(
    ax: plt.Axes, hist: plt.Axes, curves: Mapping[str, list[dict[str, float]]], eces: Mapping[str, float], bins: int
) -> None:
    """One label's diagram (diagonal, both curves, ECE in the legend) over a strip of windows per bin."""
    ax.plot([0, 1], [0, 1], ls=":", color="silver", lw=1, label="perfect calibration")
    style = {"uncalibrated": ("tab:gray", "--", "s", "none", 0.0), "calibrated": ("black", "-", "o", "full", 0.5)}
    width = 0.45 / bins
    for name, rel in curves.items():
        colour, ls, marker, fill, offset = style[name]
        ax.plot(
            [r["predicted"] for r in rel],
            [r["observed"] for r in rel],
            color=colour, ls=ls, marker=marker, fillstyle=fill, ms=4, label=f"{name}: ECE {eces[name]:.3f}",
        )  # fmt: skip
        left = [(r["bin"] + 0.05 + offset * 0.9) / bins for r in rel]
        hist.bar(left, [r["count"] for r in rel], width=width, align="edge", color=colour, alpha=0.7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("observed positive rate in the bin", fontsize=8)
    ax.tick_params(labelbottom=False)
    ax.legend(loc="upper left", fontsize=7)
    hist.set_yscale("log")
    hist.set_ylim(0.5, None)
    hist.set_ylabel("windows per\nbin (log)", fontsize=8)
    hist.set_xlabel("predicted probability (bars: windows per bin, same shade as the curve)", fontsize=8)


def reliability_plot(
    before: np.ndarray, after: np.ndarray, labels: np.ndarray, mask: np.ndarray, png: Path, data_dir: Path, bins: int
) -> dict[str, dict[str, float]]:
    """Reliability diagram per label and pooled, before and after temperature scaling; returns `label_ece`.

    Pooling hides a label that calibration made worse (temperatures are fitted per label), hence one panel
    each. Data: reliability_{uncalibrated,calibrated}.csv (pooled, what dvc.yaml charts) and
    reliability_per_label.csv.
    """
    eces = label_ece(before, after, labels, mask, bins)
    per_label: list[dict[str, Any]] = []
    panels = [*(n for n in MODEL_LABELS if n in eces), "all"]
    ncols = 3
    nrows = -(-len(panels) // ncols)
    fig = plt.figure(figsize=(5 * ncols, 5 * nrows))
    outer = fig.add_gridspec(nrows, ncols, left=0.05, right=0.98, bottom=0.06, top=0.9, hspace=0.3, wspace=0.22)
    for k, name in enumerate(panels):
        cell = outer[divmod(k, ncols)].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.06)
        ax = fig.add_subplot(cell[0])
        hist = fig.add_subplot(cell[1], sharex=ax)
        if name == "all":
            rows = mask > 0
            p_before, p_after, y = before[rows], after[rows], labels[rows]
        else:
            j = MODEL_LABELS.index(name)
            rows = mask[:, j] > 0
            p_before, p_after, y = before[rows, j], after[rows, j], labels[rows, j]
        curves = {"uncalibrated": reliability(p_before, y, bins), "calibrated": reliability(p_after, y, bins)}
        for cal, rel in curves.items():
            if name == "all":
                _write_csv(data_dir / f"reliability_{cal}.csv", rel, ["bin", "predicted", "observed", "count"])
            else:
                per_label += [{"label": name, "calibration": cal, **r} for r in rel]
        _reliability_panel(ax, hist, curves, eces[name], bins)
        title = "all labels pooled" if name == "all" else name
        ax.set_title(f"{title} ({eces[name]['n']} windows)", fontsize=10)
    _write_csv(
        data_dir / "reliability_per_label.csv",
        per_label,
        ["label", "calibration", "bin", "predicted", "observed", "count"],
    )
    fig.suptitle(
        f"Reliability on test, per label: uncalibrated vs calibrated (per-label temperature fitted on valid)\n"
        f"ECE = window-weighted mean |predicted − observed| over {bins} equal-width bins",
        fontsize=11,
    )
    _save(fig, png, 100)
    return eces


def timeline_outcome(ex: Mapping[str, Any]) -> tuple[str, str | None]:
    """(caption, mistake) for one replayed chat; mistake is "false_termination", "early" or None.

    A false termination is an end where gold says never (end_at is None): the error the policy is tuned
    hardest against, so the timeline marks it and says it in words.
    """
    end_turn, end_at, reason = ex.get("end_turn"), ex.get("end_at"), ex.get("reason")
    if end_turn is None:
        if end_at is None:
            return "not ended; no end due (correct)", None
        return f"not ended; gold end at turn {end_at} (missed)", None
    ended = f"ended at turn {end_turn}" + (f" ({reason})" if reason else "")
    if end_at is None:
        return f"{ended}; no end due: FALSE TERMINATION", "false_termination"
    if end_turn < end_at:
        return f"{ended}; gold end at turn {end_at} (early)", "early"
    late = end_turn - end_at
    return f"{ended}; gold end at turn {end_at} ({'on time' if late == 0 else f'{late} turns late'})", None


def _threshold_styles(thresholds: Mapping[str, float]) -> list[tuple[str, str, float, str]]:
    """(label, line style, value, legend text) for each policy threshold drawn on the timelines."""
    out = []
    for name in (*USER_LABELS, "redirect"):
        if name not in thresholds:
            continue
        t = float(thresholds[name])
        if name == "self_harm_risk":
            out.append((name, "--", t, f"self-harm veto threshold {t:.2f} (a user turn above it blocks any end)"))
        elif name == "end_request":
            out.append((name, ":", t, f"end_request threshold {t:.2f} (above it the chat ends)"))
        elif name == "redirect":
            out.append((name, ":", t, f"redirect threshold {t:.2f} (above it counts as a redirection)"))
        else:
            out.append((name, ":", t, f"{name} flag threshold {t:.2f}"))
    return out


def _timeline_legend(thresholds: Mapping[str, float]) -> list[Line2D]:
    """Proxy handles for everything any panel may draw, so the one shared legend names it all."""
    h = [Line2D([], [], color=LABEL_COLOURS[n], marker="o", ms=3, label=f"{n} score (user turn)") for n in USER_LABELS]
    h.append(
        Line2D([], [], color=LABEL_COLOURS["redirect"], marker="x", ls="none", label="redirect score (assistant turn)")
    )
    h += [
        Line2D([], [], color=LABEL_COLOURS[n], ls=ls, lw=1.2, label=text)
        for n, ls, _, text in _threshold_styles(thresholds)
    ]
    h += [
        Line2D([], [], color=GOLD_END_COLOUR, ls="--", lw=1.5, label="gold end (end_at: first turn where ending is warranted)"),
        Line2D([], [], color=POLICY_END_COLOUR, lw=2, label="policy ended the chat here (reason in the panel title)"),
        Line2D([], [], color=FALSE_END_COLOUR, marker="X", ms=10, ls="none", label="false termination (ended; gold: never)"),
        Line2D([], [], color=EARLY_END_COLOUR, marker="v", ms=9, ls="none", label="early end (before the gold end)"),
    ]  # fmt: skip
    return h


def _timeline_panel(ax: plt.Axes, ex: Mapping[str, Any], thresholds: Mapping[str, float]) -> None:
    pairs = list(zip(ex["roles"], ex["scores"], strict=True))
    users = [i for i, (r, _) in enumerate(pairs) if r == "user"]
    for name in USER_LABELS:
        ys = [pairs[i][1].get(name, np.nan) for i in users]
        ax.plot(users, ys, marker="o", ms=3, color=LABEL_COLOURS[name])
    bots = [i for i, (r, _) in enumerate(pairs) if r == "assistant"]
    ax.plot(
        bots,
        [pairs[i][1].get("redirect", np.nan) for i in bots],
        marker="x",
        ls="none",
        color=LABEL_COLOURS["redirect"],
    )
    for name, ls, t, _ in _threshold_styles(thresholds):
        ax.axhline(t, color=LABEL_COLOURS[name], ls=ls, lw=1.2 if name == "self_harm_risk" else 0.8)
    if ex.get("end_at") is not None:
        ax.axvline(ex["end_at"], color=GOLD_END_COLOUR, ls="--", lw=1.5, zorder=4)  # over an on-time end
    caption, mistake = timeline_outcome(ex)
    if ex.get("end_turn") is not None:
        ax.axvline(ex["end_turn"], color=POLICY_END_COLOUR, lw=2)
    if mistake == "false_termination":
        ax.plot([ex["end_turn"]], [1.0], marker="X", ms=14, color=FALSE_END_COLOUR, clip_on=False, zorder=5)
    elif mistake == "early":
        ax.plot([ex["end_turn"]], [1.0], marker="v", ms=12, color=EARLY_END_COLOUR, clip_on=False, zorder=5)
    ax.set_xlim(-0.5, max(len(pairs) - 0.5, 1.5))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(-0.02, 1.05)
    colour = FALSE_END_COLOUR if mistake == "false_termination" else "black"
    ax.set_title(f"{ex['id']} ({ex['category']}): {caption}", fontsize=9, color=colour)
    ax.set_ylabel("calibrated score\n(probability)", fontsize=8)


def timelines(
    examples: Sequence[Mapping[str, Any]], png: Path, json_path: Path, thresholds: Mapping[str, float]
) -> None:
    """Per-turn scores of a few test conversations, the policy's thresholds, its end and the gold end_at.

    Each example: {"id", "category", "roles", "scores": [{label: p}], "end_turn", "end_at", "reason"}.
    One legend below the panels (built from proxies, so it names what any panel draws and covers none).
    """
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(list(examples), indent=1) + "\n")
    n = max(1, len(examples))
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.3 * n + 2.2), squeeze=False, layout="constrained")
    for ax, ex in zip(axes[:, 0], examples, strict=False):
        _timeline_panel(ax, ex, thresholds)
    axes[-1, 0].set_xlabel("turn index in the conversation (user turns: dots and lines; assistant turns: ×)")
    fig.suptitle("Decision timelines: test conversations, mistakes first, then one per category", fontsize=11)
    fig.legend(handles=_timeline_legend(thresholds), loc="outside lower center", ncol=2, fontsize=8)
    _save(fig, png, 100)
