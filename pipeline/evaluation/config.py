"""Typed params of evaluation: configs/eval.yaml, configs/policy.yaml `calibration`, configs/gates.yaml."""

from __future__ import annotations

from dataclasses import dataclass

from serving.labels import MODEL_LABELS


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int
    ece_bins: int
    timelines: int
    worst_errors: int


@dataclass(frozen=True)
class BaselineConfig:
    max_features: int
    ngram_max: int
    char_ngrams: bool
    C: float


@dataclass(frozen=True)
class CalibrationConfig:
    """How `evaluate` picks the policy's thresholds on valid (pipeline/evaluation/thresholds.py)."""

    target_false_termination_rate: float
    self_harm_safety_margin: float
    self_harm_min_recall: float
    self_harm_max_threshold: float
    grid: list[float]
    tuned_labels: list[str | list[str]]
    joint_grid: list[float]
    early_end_cost: float
    search_passes: int
    #: Share of valid should-end chats the search gives up for higher (more conservative) thresholds.
    tie_tolerance: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.tie_tolerance < 1.0:
            raise ValueError(f"tie_tolerance must be in [0, 1), got {self.tie_tolerance}")
        for entry in self.tuned_labels:
            names = [entry] if isinstance(entry, str) else entry
            if not names or set(names) - set(MODEL_LABELS):
                raise ValueError(f"tuned_labels: {entry!r} is not a label or a list of labels")
        if not self.grid or not self.joint_grid:
            raise ValueError("grid and joint_grid must not be empty")


@dataclass(frozen=True)
class GatesConfig:
    """Quality gates on the test replay (pipeline/evaluation/gates.py)."""

    enforce: bool
    self_harm_ended_max: int
    false_termination_rate_max: float | None
    termination_recall_min: float
    lateness_median_max: float
    early_terminations_max: int
    baseline_margin: float


@dataclass(frozen=True)
class TransferConfig:
    """Real conversations the shipped bundle is judged on (pipeline/stages/transfer.py)."""

    datasets: str
    topical_splits: list[str]
    topical_limit: int | None
