"""Logits -> per-label scores. The one conversion used by evaluation and serving.

Temperatures are fitted per label on the validation split (`evaluate`) and
shipped in the bundle; thresholds are set on the calibrated scores, so applying
the same temperatures here is what makes production decide as evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from serving.labels import MODEL_LABELS


def temperature_vector(temperatures: Mapping[str, float] | None, labels: Sequence[str] = MODEL_LABELS) -> np.ndarray:
    """Temperatures in column order; a missing label means 1.0 (uncalibrated)."""
    temps = temperatures or {}
    vec = np.array([float(temps.get(name, 1.0)) for name in labels], dtype=np.float64)
    if np.any(vec <= 0) or not np.all(np.isfinite(vec)):
        raise ValueError(f"temperatures must be finite and > 0, got {dict(zip(labels, vec, strict=True))}")
    return vec


def scores_from_logits(logits: np.ndarray, temperatures: np.ndarray | None = None) -> np.ndarray:
    """sigmoid(logit / T), computed stably; shape [n, labels]."""
    z = np.asarray(logits, dtype=np.float64)
    if temperatures is not None:
        z = z / temperatures
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def scores_dicts(probs: np.ndarray, labels: Sequence[str] = MODEL_LABELS) -> list[dict[str, float]]:
    return [{name: float(p) for name, p in zip(labels, row, strict=True)} for row in np.asarray(probs)]
