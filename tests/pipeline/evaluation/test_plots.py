"""The evaluate stage's plots: they write, they explain themselves, and their numbers are the metrics' numbers."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.evaluation import plots
from pipeline.evaluation.report import calibration_report
from pipeline.evaluation.thresholds import calibrated
from pipeline.evaluation.turn_metrics import ece
from serving.labels import MODEL_LABELS, USER_LABELS

THRESHOLDS = {"harmful_request": 0.97, "abuse": 0.95, "end_request": 0.99, "self_harm_risk": 0.19, "redirect": 0.85}


def synthetic_windows(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits, labels, mask) of alternating user / assistant windows, labels drawn from the scores."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.5, size=(n, len(MODEL_LABELS)))
    labels = (rng.random(logits.shape) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    user = (np.arange(n) % 2 == 0)[:, None]
    is_user_label = np.array([name in USER_LABELS for name in MODEL_LABELS])[None, :]
    mask = np.where(user, is_user_label, ~is_user_label).astype(np.float32)
    return logits, labels, mask


def captured_figure(monkeypatch: pytest.MonkeyPatch):
    """Keep the figure a plot function saves, drawn, so a test can inspect its layout."""
    box: dict = {}
    real = plots._save

    def keep(fig, png: Path, dpi: int) -> None:
        fig.canvas.draw()
        box["fig"] = fig
        box["legends"] = [leg.get_window_extent() for leg in fig.legends]
        box["axes"] = [ax.get_window_extent() for ax in fig.axes]
        box["titles"] = [ax.get_title() for ax in fig.axes]
        real(fig, png, dpi)

    monkeypatch.setattr(plots, "_save", keep)
    return box


def test_ece_on_a_known_input() -> None:
    # bin [0.1, 0.2): mean 0.1, observed 0.5 -> 0.4 on 2 cells; bin [0.9, 1.0]: 0.9 vs 1.0 -> 0.1 on 2 cells
    assert ece(np.array([0.1, 0.1, 0.9, 0.9]), np.array([0, 1, 1, 1]), bins=10) == pytest.approx((0.8 + 0.2) / 4)
    assert ece(np.full(4, 0.5), np.array([0, 1, 0, 1]), bins=10) == pytest.approx(0.0)
    assert ece(np.array([]), np.array([]), bins=10) == 0.0


def test_label_ece_is_what_metrics_report() -> None:
    """The ECE the reliability plot prints is calibration_report's (metrics/eval.json), label by label."""
    logits, labels, mask = synthetic_windows()
    temps = dict(zip(MODEL_LABELS, (0.8, 1.2, 1.5, 0.6, 1.0), strict=True))
    got = plots.label_ece(calibrated(logits, {}), calibrated(logits, temps), labels, mask, bins=15)
    want = calibration_report(logits, SimpleNamespace(labels=labels, mask=mask), temps, 15)
    assert set(got) == set(want) == {*MODEL_LABELS, "all"}
    for name in want:
        assert got[name]["uncalibrated"] == pytest.approx(want[name]["ece_before"])
        assert got[name]["calibrated"] == pytest.approx(want[name]["ece_after"])
    assert got["redirect"]["n"] == 200 and got["all"]["n"] == 200 * len(USER_LABELS) + 200


def test_reliability_plot_one_panel_per_label_with_its_ece(tmp_path: Path, monkeypatch) -> None:
    box = captured_figure(monkeypatch)
    logits, labels, mask = synthetic_windows()
    before, after = calibrated(logits, {}), calibrated(logits, {"abuse": 2.0})
    png = tmp_path / "reliability.png"
    eces = plots.reliability_plot(before, after, labels, mask, png, tmp_path / "data", bins=10)
    assert png.stat().st_size > 10_000
    titles = [t for t in box["titles"] if t]
    assert [t.split(" (")[0] for t in titles] == [*MODEL_LABELS, "all labels pooled"]
    legend_texts = [t.get_text() for ax in box["fig"].axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert f"calibrated: ECE {eces['abuse']['calibrated']:.3f}" in legend_texts
    assert f"uncalibrated: ECE {eces['abuse']['uncalibrated']:.3f}" in legend_texts
    assert "perfect calibration" in legend_texts
    # dvc.yaml charts the pooled CSVs: their format stays
    with (tmp_path / "data" / "reliability_calibrated.csv").open() as fh:
        pooled = list(csv.DictReader(fh))
    assert list(pooled[0]) == ["bin", "predicted", "observed", "count"]
    assert sum(int(r["count"]) for r in pooled) == int(mask.sum())
    with (tmp_path / "data" / "reliability_per_label.csv").open() as fh:
        per_label = list(csv.DictReader(fh))
    assert {r["label"] for r in per_label} == set(MODEL_LABELS)
    redirect = [r for r in per_label if r["label"] == "redirect" and r["calibration"] == "calibrated"]
    assert sum(int(r["count"]) for r in redirect) == int(mask[:, MODEL_LABELS.index("redirect")].sum())


@pytest.mark.parametrize(
    ("end_turn", "end_at", "mistake", "words"),
    [
        (8, None, "false_termination", "FALSE TERMINATION"),
        (4, 8, "early", "early"),
        (None, 8, None, "missed"),
        (8, 8, None, "on time"),
        (10, 8, None, "2 turns late"),
        (None, None, None, "correct"),
    ],
)
def test_timeline_outcome(end_turn, end_at, mistake, words) -> None:
    caption, got = plots.timeline_outcome({"end_turn": end_turn, "end_at": end_at, "reason": "persistent_abuse"})
    assert got == mistake and words in caption


def timeline_example(cid: str, end_turn: int | None, end_at: int | None) -> dict:
    roles = ["user", "assistant"] * 5
    scores = [{name: 0.1 * (i % 10) for name in MODEL_LABELS} for i in range(len(roles))]
    return {"id": cid, "category": "x", "roles": roles, "scores": scores, "end_turn": end_turn, "end_at": end_at}


def test_timelines_legend_outside_and_names_every_mark(tmp_path: Path, monkeypatch) -> None:
    box = captured_figure(monkeypatch)
    examples = [timeline_example("a", 8, None), timeline_example("b", 4, 8), timeline_example("c", None, 6)]
    png = tmp_path / "timelines.png"
    plots.timelines(examples, png, tmp_path / "timelines.json", THRESHOLDS)
    assert png.stat().st_size > 10_000 and (tmp_path / "timelines.json").exists()
    (legend,) = box["legends"]
    assert not any(legend.overlaps(ax) for ax in box["axes"]), "the legend covers a panel"
    texts = [t.get_text() for t in box["fig"].legends[0].get_texts()]
    for needed in ("gold end", "self-harm veto threshold 0.19", "false termination", "early end", "policy ended"):
        assert any(needed in t for t in texts), needed
    assert "FALSE TERMINATION" in box["titles"][0] and "early" in box["titles"][1] and "missed" in box["titles"][2]


def test_one_colour_per_meaning() -> None:
    decisions = [plots.GOLD_END_COLOUR, plots.POLICY_END_COLOUR, plots.FALSE_END_COLOUR, plots.EARLY_END_COLOUR]
    colours = [*plots.LABEL_COLOURS.values(), *decisions]
    assert len(set(colours)) == len(colours)
    assert set(plots.LABEL_COLOURS) == set(MODEL_LABELS)


def test_primary_class_takes_the_first_user_label() -> None:
    def vec(*names: str) -> list[float]:
        return [1.0 if n in names else 0.0 for n in MODEL_LABELS]

    assert plots.primary_class(vec("abuse", "harmful_request")) == "harmful_request"
    assert plots.primary_class(vec("self_harm_risk", "end_request")) == "end_request"
    assert plots.primary_class(vec("redirect")) == "benign"


def test_confusion_explains_its_classes(tmp_path: Path, monkeypatch) -> None:
    box = captured_figure(monkeypatch)
    actual = ["benign", "abuse", "abuse", "harmful_request"]
    predicted = ["benign", "abuse", "benign", "harmful_request"]
    png = tmp_path / "confusion.png"
    m = plots.confusion(actual, predicted, png, tmp_path / "confusion.csv", turn_thresholds=THRESHOLDS)
    assert png.stat().st_size > 10_000
    assert m["abuse"] == {"benign": 1, "harmful_request": 0, "abuse": 1, "end_request": 0, "self_harm_risk": 0}
    assert (tmp_path / "confusion.csv").read_text().startswith("actual,predicted")
    ax = box["fig"].axes[0]
    assert " > ".join(USER_LABELS) in ax.get_title()
    assert "abuse 0.95" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_yticklabels()][2] == "abuse (n=2)"


def test_pr_curves_write_png_and_csv(tmp_path: Path, monkeypatch) -> None:
    box = captured_figure(monkeypatch)
    logits, labels, mask = synthetic_windows()
    png = tmp_path / "pr.png"
    written = plots.pr_curves(calibrated(logits, {}), labels, mask, png, tmp_path)
    assert png.stat().st_size > 10_000 and len(written) == len(MODEL_LABELS)
    assert written[0].read_text().startswith("recall,precision,threshold")
    (legend,) = box["legends"]
    assert not any(legend.overlaps(ax) for ax in box["axes"])
