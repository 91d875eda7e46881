"""Parity of the exported models: every test window scored as the serving scorer scores it, and the
decisions each model's scores drive, replayed through serving.policy; and the re-scoring margin."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.data.split_files import read_split
from pipeline.export.config import RescoreSettings
from serving.bundle import MODEL_FILES
from serving.calibration import scores_dicts, scores_from_logits, temperature_vector
from serving.labels import MODEL_LABELS
from serving.policy import PolicyConfig, first_end, replay
from serving.rescore import RescoreConfig, blend, margin_from_errors
from serving.schema import Conversation
from serving.session import OnnxModel
from serving.window import WindowEncoder, pad_batch

log = logging.getLogger("pipeline.export.parity")


class ExportError(RuntimeError):
    """A gate failed or an input is unusable; the message says which."""


@dataclass
class TestWindows:
    """Every scored (non-system) turn of the test split, as the serving scorer windows it."""

    windows: list[tuple[list[int], list[int]]]
    conv_index: list[int]
    turn_index: list[int]


def collect_windows(conversations: Sequence[Conversation], encoder: WindowEncoder) -> TestWindows:
    tw = TestWindows([], [], [])
    for ci, conv in enumerate(conversations):
        turns = [(t.role, t.text) for t in conv.turns]
        for ti, (w, (role, _)) in enumerate(zip(encoder.encode_conversation(turns), turns, strict=True)):
            if role == "system":
                continue
            tw.windows.append(w)
            tw.conv_index.append(ci)
            tw.turn_index.append(ti)
    return tw


def calibration_windows(split_path: Path, encoder: WindowEncoder, limit: int, purpose: str) -> tuple[list, list[str]]:
    """Up to `limit` windows spread evenly over a split, and their turns' roles (valid: choices made at export
    never see test). `purpose` names the config that asked, for the error message."""
    if not split_path.is_file():
        raise ExportError(f"{split_path}: calibration split not found ({purpose})")
    convs = read_split(str(split_path))
    tw = collect_windows(convs, encoder)
    if not tw.windows:
        raise ExportError(f"{split_path}: no calibration windows ({purpose})")
    step = max(1, len(tw.windows) // max(1, limit))
    return tw.windows[::step][:limit], window_roles(convs, tw)[::step][:limit]


def _batches(windows: Sequence, batch_size: int) -> list[list[int]]:
    order = sorted(range(len(windows)), key=lambda i: len(windows[i][0]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def onnx_logits(
    model: OnnxModel, windows: Sequence, pad_id: int, batch_size: int = 64, desc: str = "onnx"
) -> np.ndarray:
    out = np.zeros((len(windows), len(MODEL_LABELS)), dtype=np.float32)
    for idx in tqdm(_batches(windows, batch_size), desc=desc, unit="batch", file=sys.stderr):
        ids, mask, types = pad_batch([windows[i] for i in idx], pad_id)
        out[idx] = model.run(np.asarray(ids), np.asarray(mask), np.asarray(types))
    return out


def replay_outcomes(
    conversations: Sequence[Conversation], tw: TestWindows, probs: np.ndarray, policy: PolicyConfig
) -> tuple[list[tuple[int | None, str | None]], list[list[tuple[str, str]]]]:
    """Per conversation: (end turn, reason) of the first end, and every turn's (action, reason)."""
    per_conv: list[dict[int, dict[str, float]]] = [{} for _ in conversations]
    for row, (ci, ti) in zip(scores_dicts(probs), zip(tw.conv_index, tw.turn_index, strict=True), strict=True):
        per_conv[ci][ti] = row
    outcomes, turn_actions = [], []
    for conv, scored in zip(conversations, per_conv, strict=True):
        roles = [t.role for t in conv.turns]
        actions = replay(policy, roles, [scored.get(i, {}) for i in range(len(roles))], stop_at_end=False)
        end = first_end(actions)
        outcomes.append((None, None) if end is None else (end.index, end.reason))
        turn_actions.append([(a.action, a.reason) for a in actions])
    return outcomes, turn_actions


def parity_metrics(
    conversations: Sequence[Conversation],
    tw: TestWindows,
    logits_torch: np.ndarray,
    logits_fp32: np.ndarray,
    logits_int8: np.ndarray,
    policy: PolicyConfig,
    temperatures: Mapping[str, float],
    rescore: RescoreConfig | None = None,
) -> dict[str, Any]:
    """Parity of the exported models on every test window; with `rescore`, also of what the serving scorer
    decides (int8, with turns near a threshold re-scored by fp32)."""
    temps = temperature_vector(temperatures)
    p_torch = scores_from_logits(logits_torch, temps)
    p_fp32 = scores_from_logits(logits_fp32, temps)
    p_int8 = scores_from_logits(logits_int8, temps)
    d_logit = np.abs(logits_fp32.astype(np.float64) - logits_torch)
    d_prob = np.abs(p_int8 - p_fp32)
    out_torch, _ = replay_outcomes(conversations, tw, p_torch, policy)
    out_fp32, act_fp32 = replay_outcomes(conversations, tw, p_fp32, policy)
    out_int8, act_int8 = replay_outcomes(conversations, tw, p_int8, policy)
    n_conv = max(len(conversations), 1)
    turn_pairs = [(a, b) for fa, ia in zip(act_fp32, act_int8, strict=True) for a, b in zip(fa, ia, strict=True)]
    disagreements = [
        {"id": c.id, "fp32": list(a), "int8": list(b)}
        for c, a, b in zip(conversations, out_fp32, out_int8, strict=True)
        if a != b
    ]
    return {
        "conversations": len(conversations),
        "windows": len(tw.windows),
        "fp32_max_abs_logit": float(d_logit.max()) if d_logit.size else 0.0,
        "fp32_mean_abs_logit": float(d_logit.mean()) if d_logit.size else 0.0,
        "int8_max_abs_prob": float(d_prob.max()) if d_prob.size else 0.0,
        "int8_mean_abs_prob": float(d_prob.mean()) if d_prob.size else 0.0,
        "int8_max_abs_prob_per_label": {
            name: float(d_prob[:, j].max()) if d_prob.size else 0.0 for j, name in enumerate(MODEL_LABELS)
        },
        "int8_decision_agreement": sum(a == b for a, b in zip(out_fp32, out_int8, strict=True)) / n_conv,
        "int8_turn_action_agreement": (sum(a == b for a, b in turn_pairs) / len(turn_pairs)) if turn_pairs else 1.0,
        "int8_vs_torch_decision_agreement": sum(a == b for a, b in zip(out_torch, out_int8, strict=True)) / n_conv,
        "fp32_vs_torch_decision_agreement": sum(a == b for a, b in zip(out_torch, out_fp32, strict=True)) / n_conv,
        "ended_fp32": sum(a[0] is not None for a in out_fp32),
        "ended_int8": sum(a[0] is not None for a in out_int8),
        "disagreements": disagreements[:50],
        **(served_parity(conversations, tw, p_fp32, p_int8, out_fp32, policy, rescore) if rescore else {}),
    }


def window_roles(conversations: Sequence[Conversation], tw: TestWindows) -> list[str]:
    return [conversations[c].turns[t].role for c, t in zip(tw.conv_index, tw.turn_index, strict=True)]


def served_parity(
    conversations: Sequence[Conversation],
    tw: TestWindows,
    p_fp32: np.ndarray,
    p_int8: np.ndarray,
    out_fp32: list,
    policy: PolicyConfig,
    rescore: RescoreConfig,
) -> dict[str, Any]:
    """Decision agreement of the served scorer (int8 + re-scoring near thresholds) with fp32."""
    p_served, near = blend(p_int8, p_fp32, window_roles(conversations, tw), policy.thresholds, rescore.margin)
    out_served, _ = replay_outcomes(conversations, tw, p_served, policy)
    n_conv = max(len(conversations), 1)
    return {
        "served_decision_agreement": sum(a == b for a, b in zip(out_fp32, out_served, strict=True)) / n_conv,
        "served_rescored_share": float(near.mean()) if near.size else 0.0,
        "rescore_margin": float(rescore.margin),
        "served_disagreements": [
            {"id": c.id, "fp32": list(a), "served": list(b)}
            for c, a, b in zip(conversations, out_fp32, out_served, strict=True)
            if a != b
        ][:50],
    }


def fit_rescore(
    fp32_path: Path,
    int8_path: Path,
    calibration_split: Path,
    encoder: WindowEncoder,
    temperatures: Mapping[str, float],
    cfg: RescoreSettings,
    threads: int,
    disabled_optimizers: Sequence[str] = (),
) -> RescoreConfig:
    """The re-scoring margin: a quantile of int8's error on valid windows (never test), scored as served."""
    wins, roles = calibration_windows(calibration_split, encoder, cfg.calibration_windows, "export.rescore")
    temps = temperature_vector(temperatures)
    lf = onnx_logits(
        OnnxModel(fp32_path, threads=threads, disabled_optimizers=disabled_optimizers),
        wins,
        encoder.pad_id,
        64,
        desc="rescore fp32",
    )
    li = onnx_logits(
        OnnxModel(int8_path, threads=threads, disabled_optimizers=disabled_optimizers),
        wins,
        encoder.pad_id,
        1,
        desc="rescore int8",
    )
    quantile = cfg.quantile
    margin = margin_from_errors(scores_from_logits(li, temps), scores_from_logits(lf, temps), quantile, roles)
    source = (
        f"quantile {quantile} of |int8 - fp32| calibrated logit over {len(wins)} windows of {calibration_split.name}"
    )
    log.info("re-scoring margin %.3f (%s)", margin, source)
    return RescoreConfig(model=MODEL_FILES[cfg.model], margin=round(margin, 4), source=source)
