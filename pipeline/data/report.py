"""The data report written by `split`: what each split holds, for people (PNG) and for DVC (JSON metric, CSV plot).

Counts per split, category, label and source; turn-count and text-length distributions; truncation; the leakage
check's result. `metrics/data_report.json` is a DVC metric, `plots/data/split_counts.csv` feeds the `dvc plots`
definition in dvc.yaml, `plots/data_report.png` is the same at a glance.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from serving.labels import MODEL_LABELS


def _dist(values: Sequence[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "p50": 0, "p90": 0, "p99": 0, "max": 0, "mean": 0.0}
    a = np.asarray(values)
    return {
        "min": int(a.min()),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "max": int(a.max()),
        "mean": round(float(a.mean()), 2),
    }


def split_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts and distributions for one split."""
    labels: Counter[str] = Counter()
    turn_counts: list[int] = []
    chars: list[int] = []
    roles: Counter[str] = Counter()
    truncated = 0
    partially_labelled = 0
    for r in records:
        turn_counts.append(len(r["turns"]))
        partially_labelled += "labelled_turns" in r["meta"]
        for t in r["turns"]:
            roles[t["role"]] += 1
            chars.append(len(t["text"]))
            labels.update(t["labels"])
            truncated += bool((t.get("meta") or {}).get("truncated"))
    return {
        "conversations": len(records),
        "turns": sum(turn_counts),
        "categories": dict(sorted(Counter(r["category"] for r in records).items())),
        "sources": dict(sorted(Counter(r["source"] for r in records).items())),
        "labels": {name: labels.get(name, 0) for name in MODEL_LABELS},
        "roles": dict(sorted(roles.items())),
        "ending_conversations": sum(r.get("end_at") is not None for r in records),
        "partially_labelled_conversations": partially_labelled,
        "truncated_turns": truncated,
        "turns_per_conversation": _dist(turn_counts),
        "chars_per_turn": _dist(chars),
        "_turn_counts": turn_counts,
        "_chars": chars,
    }


def write_report(
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    json_path: Path,
    png_path: Path | None,
    csv_path: Path | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the JSON metric, the CSV for `dvc plots` and the PNG; returns the JSON content."""
    summaries = {name: split_summary(recs) for name, recs in splits.items()}
    report: dict[str, Any] = {**(extra or {})}
    report["total"] = sum(s["conversations"] for s in summaries.values())
    report["splits"] = {name: {k: v for k, v in s.items() if not k.startswith("_")} for name, s in summaries.items()}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if csv_path is not None:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with csv_path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["split_category", "split", "category", "conversations"])
            for name, s in summaries.items():
                for cat, n in s["categories"].items():
                    w.writerow([f"{name}/{cat}", name, cat, n])
    if png_path is not None:
        _plot(summaries, png_path)
    return report


def _plot(summaries: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summaries)
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    cats = sorted({c for s in summaries.values() for c in s["categories"]})
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(cats))
    ax = axes[0, 0]
    for k, name in enumerate(names):
        ax.barh(x + k * width, [summaries[name]["categories"].get(c, 0) for c in cats], width, label=name)
    ax.set_yticks(x + width * (len(names) - 1) / 2, cats)
    ax.set_title("conversations per category")
    ax.legend()
    ax = axes[0, 1]
    x = np.arange(len(MODEL_LABELS))
    for k, name in enumerate(names):
        total = max(summaries[name]["turns"], 1)
        ax.bar(x + k * width, [summaries[name]["labels"][lb] / total for lb in MODEL_LABELS], width, label=name)
    ax.set_xticks(x + width * (len(names) - 1) / 2, MODEL_LABELS, rotation=20)
    ax.set_title("label rate (labelled turns / all turns)")
    ax.legend()
    ax = axes[1, 0]
    top = max((max(s["_turn_counts"], default=1) for s in summaries.values()), default=1)
    bins = np.arange(0.5, top + 1.5)
    for name in names:
        counts, edges = np.histogram(np.asarray(summaries[name]["_turn_counts"]), bins=bins, density=True)
        ax.stairs(counts, edges, label=name)
    ax.set_title("turns per conversation")
    ax.legend()
    ax = axes[1, 1]
    top = max((max(s["_chars"], default=1) for s in summaries.values()), default=1)
    bins = np.logspace(0, np.log10(max(top, 10)), 40)
    for name in names:
        counts, edges = np.histogram(np.asarray(summaries[name]["_chars"]), bins=bins)
        ax.stairs(counts / max(counts.sum(), 1), edges, label=name)
    ax.set_xscale("log")
    ax.set_title("characters per turn (share of turns per log bin)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
