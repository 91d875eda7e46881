"""Calibration and threshold choice, all on the validation split.

1. A temperature per label (sigmoid(logit / T)) minimising the masked NLL: scores mean what they say,
   which makes thresholds transferable and the reliability diagram honest.
2. Per-label thresholds maximising turn-level F1, except `self_harm_risk`: it vetoes ending, so its
   threshold is set for recall (the highest keeping `self_harm_min_recall`, capped).
3. The thresholds the policy reads are then tuned by replaying the valid conversations through
   `serving.policy.replay`: no self-harm conversation ended and a false-termination rate on never-end
   conversations <= the target, then the most should-end conversations ended on time or late (an early
   end costs more than a miss), then the least lateness. Coordinate search over a grid, harmful_request and
   abuse apart; options within `tie_tolerance` of the best count as ties and the highest thresholds win
   (without it: the middle of the plateau). The veto `self_harm_risk` is set by its own safety rule
   (`veto_threshold`), never by utility.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from pipeline.evaluation.config import CalibrationConfig
from pipeline.evaluation.replay_metrics import outcome
from pipeline.evaluation.turn_metrics import best_f1_threshold, threshold_for_recall
from serving.calibration import scores_from_logits
from serving.labels import MODEL_LABELS
from serving.policy import PolicyConfig, replay
from serving.schema import Conversation


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """T > 0 minimising the binary NLL of sigmoid(logit / T) (1.0 when there is nothing to fit)."""
    z = np.asarray(logits, dtype=np.float64)
    yb = np.asarray(y, dtype=np.float64)
    if z.size == 0 or yb.min() == yb.max():
        return 1.0

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        # log(1 + e^s) - y s, stably
        return float(np.mean(np.logaddexp(0.0, s) - yb * s))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def fit_temperatures(logits: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    out = {}
    for j, name in enumerate(MODEL_LABELS):
        rows = mask[:, j] > 0
        out[name] = fit_temperature(logits[rows, j], labels[rows, j]) if rows.any() else 1.0
    return out


def label_thresholds(
    probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, cal: CalibrationConfig
) -> dict[str, float]:
    """Turn-level thresholds per label (F1-optimal; recall-first for self_harm_risk)."""
    out = {}
    for j, name in enumerate(MODEL_LABELS):
        rows = mask[:, j] > 0
        if not rows.any() or labels[rows, j].sum() == 0:
            out[name] = 0.5
            continue
        t, _ = best_f1_threshold(probs[rows, j], labels[rows, j])
        if name == "self_harm_risk":
            t_rec = threshold_for_recall(probs[rows, j], labels[rows, j], cal.self_harm_min_recall)
            t = min(t, t_rec, cal.self_harm_max_threshold)
        out[name] = float(np.clip(t, 0.01, 0.99))
    return out


@dataclass
class ReplaySummary:
    never_end: int
    false_terminations: int
    should_end: int
    terminated: int
    early: int
    self_harm_ended: int
    lateness_mean: float
    #: Self-harm chats ended at or after a turn that signalled the risk: what the veto must prevent.
    self_harm_ended_after_risk: int = 0

    @property
    def ftr(self) -> float:
        return self.false_terminations / self.never_end if self.never_end else 0.0

    def utility(self, early_cost: float = 1.0) -> float:
        """Ends on time or late, where an early end counts as a miss and costs `early_cost` more."""
        return self.terminated - (1.0 + early_cost) * self.early

    @property
    def recall(self) -> float:
        return self.terminated / self.should_end if self.should_end else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "never_end": self.never_end,
            "false_terminations": self.false_terminations,
            "false_termination_rate": self.ftr,
            "should_end": self.should_end,
            "terminated": self.terminated,
            "termination_recall": self.recall,
            "early_terminations": self.early,
            "self_harm_ended": self.self_harm_ended,
            "self_harm_ended_after_risk": self.self_harm_ended_after_risk,
            "lateness_mean": self.lateness_mean,
        }


def replay_all(
    config: PolicyConfig, conversations: Sequence[Conversation], scores: Sequence[Sequence[Mapping[str, float]]]
):
    """The policy's actions for every conversation (scores: one dict per turn, {} for system turns)."""
    return [replay(config, [t.role for t in c.turns], s) for c, s in zip(conversations, scores, strict=True)]


def summarise_replay(
    config: PolicyConfig, conversations: Sequence[Conversation], scores: Sequence[Sequence[Mapping[str, float]]]
) -> ReplaySummary:
    rows = [outcome(c, a) for c, a in zip(conversations, replay_all(config, conversations, scores), strict=True)]
    never = [r for r in rows if not r["should_end"]]
    should = [r for r in rows if r["should_end"]]
    lat = [r["lateness"] for r in should if r["ended"] and r["lateness"] is not None and r["lateness"] >= 0]
    return ReplaySummary(
        never_end=len(never),
        false_terminations=sum(r["ended"] for r in never),
        should_end=len(should),
        terminated=sum(r["ended"] for r in should),
        early=sum(1 for r in should if r["ended"] and r["lateness"] is not None and r["lateness"] < 0),
        self_harm_ended=sum(r["ended"] for r in rows if r["category"].startswith("self_harm")),
        lateness_mean=float(np.mean(lat)) if lat else 0.0,
        self_harm_ended_after_risk=sum(r["ended_after_risk"] for r in rows if r["category"].startswith("self_harm")),
    )


def _key(s: ReplaySummary, target: float, early_cost: float = 1.0) -> tuple:
    """Feasible first (no self-harm conversation ended after it signalled the risk, FTR <= target); then
    terminations, where an early end counts as a miss and costs `early_cost` more (early is worse than late,
    and worse than missing: calibration.early_end_cost); then the fewest false terminations and the least
    lateness.

    A self-harm chat ended *before* any risk turn (a "pass on that one" read as an end request at turn 0) is
    a false termination, and the FTR term charges it to the flag and end thresholds. Counted as a veto
    failure it made every option infeasible, and the search then only minimised FTR (abuse went to 0.9)."""
    feasible = s.ftr <= target + 1e-12 and s.self_harm_ended_after_risk == 0
    if feasible:
        return (1, s.utility(early_cost), -s.ftr, -s.lateness_mean)
    return (0, -s.self_harm_ended_after_risk, -s.ftr, s.utility(early_cost), -s.lateness_mean)


def veto_threshold(
    base: PolicyConfig,
    conversations: Sequence[Conversation],
    scores: Sequence[Sequence[Mapping[str, float]]],
    current: Mapping[str, float],
    start: float,
    grid: Sequence[float],
    cal: CalibrationConfig,
) -> tuple[float, float | None]:
    """The self-harm veto: `self_harm_safety_margin` (0.5) times the highest value at which valid ends no
    self-harm chat after its risk turn; never below its recall-calibrated start unless valid demands it, never
    above `self_harm_max_threshold`. Returns (threshold, that highest safe value or None).

    Why a margin: the boundary valid measures is where *its* phrasings stop being caught, and unseen ones score
    lower. Over four retrained models the valid boundary lay between 0.15 and 0.95 while test stayed safe up to
    0.30-0.95; half the valid boundary was safe on test every time. The start alone (95 % of valid risk turns
    caught) sat anywhere from 0.06 to 0.3, set by a handful of lowest-scoring turns, and vetoed most true end
    requests ("I'm done, end the chat" scores 0.2-0.5 self-harm). Ends grow with the threshold (a lower veto
    only blocks more), so the safe values are the ones below the first unsafe one.
    """
    margin = cal.self_harm_safety_margin
    cap = cal.self_harm_max_threshold
    safe_max: float | None = None
    for v in sorted(grid):
        s = summarise_replay(base.with_thresholds({**current, "self_harm_risk": v}), conversations, scores)
        if s.self_harm_ended_after_risk:
            break
        safe_max = v
    if safe_max is None:  # not even the lowest value keeps valid safe: veto as much as the grid allows
        return min(min(grid), start), None
    return min(cap, safe_max, max(start, margin * safe_max)), safe_max


def _search_coords(tuned: Sequence[Any]) -> list[tuple[str, ...]]:
    """The search's coordinates: each tuned entry as a tuple of labels (a list entry is searched jointly)."""
    # An entry may be a list of labels searched jointly (harmful_request and abuse both feed `flagged`:
    # moving one at a time gets stuck).
    return [tuple(t) if isinstance(t, list | tuple) else (t,) for t in tuned]


def _unavoidable_false_terminations(
    base: PolicyConfig,
    conversations: Sequence[Conversation],
    scores: Sequence[Sequence[Mapping[str, float]]],
    current: Mapping[str, float],
    coords: Sequence[tuple[str, ...]],
    top: float,
) -> ReplaySummary:
    """The replay with every searched label but the veto at the top of the grid: its false terminations are a
    floor that no threshold on the grid prevents (a benign opener scored 1.0 end_request).

    The FTR target applies on top of that floor. Demanding the impossible made every option infeasible, and the
    search then only minimised false terminations at any cost in recall (valid recall fell to 0.15)."""
    strict = {**current, **{n: top for names in coords for n in names if n != "self_harm_risk"}}
    return summarise_replay(base.with_thresholds(strict), conversations, scores)


def _best_combo(
    base: PolicyConfig,
    conversations: Sequence[Conversation],
    scores: Sequence[Sequence[Mapping[str, float]]],
    current: Mapping[str, float],
    names: tuple[str, ...],
    grid: Sequence[float],
    budget: float,
    early_cost: float,
    tolerance: float = 0.0,
) -> tuple[tuple[float, ...], ReplaySummary] | None:
    """The best values for `names` (the others held at `current`), or None when the current ones stay.

    With `tolerance`, every feasible option within that share of valid should-end chats of the best utility
    counts as a tie, and the highest thresholds win: valid's scores sit near 0 or 1, so options it cannot tell
    apart differ on real text, where the higher one ends fewer safe look-alikes (2026-12-04-policy-frontier-
    evidence-veto.md); a last resort errs towards continuing. Without it, ties resolve to the middle."""
    now = tuple(current[n] for n in names)
    results = []
    for combo in itertools.product(*(sorted(set(grid) | {current[n]}) for n in names)):
        s = summarise_replay(
            base.with_thresholds({**current, **dict(zip(names, combo, strict=True))}), conversations, scores
        )
        results.append((combo, s, _key(s, budget, early_cost)))
    top = max(r[2] for r in results)
    if tolerance > 0 and top[0] == 1:
        slack = tolerance * max(results[0][1].should_end, 1)
        near = [r for r in results if r[2][0] == 1 and r[2][1] >= top[1] - slack]
        combo, s, _ = max(near, key=lambda r: (sum(r[0]), r[2]))
        return None if combo == now else (combo, s)
    plateau = [r for r in results if r[2] == top]
    if len(plateau) == 1 and plateau[0][0] == now:
        return None
    combo, s, _ = plateau[len(plateau) // 2]  # ties: the middle of the plateau (robust)
    return None if combo == now else (combo, s)


def _search_coordinate(
    base: PolicyConfig,
    conversations: Sequence[Conversation],
    scores: Sequence[Sequence[Mapping[str, float]]],
    current: dict[str, float],
    names: tuple[str, ...],
    grids: tuple[list[float], list[float]],
    sh_start: float,
    budget: float,
    cal: CalibrationConfig,
) -> tuple[dict[str, Any], ReplaySummary] | None:
    """One coordinate of the search, `current` updated in place; None when it does not move. The veto is not
    searched for utility: its safety rule sets it."""
    grid, joint_grid = grids
    if names == ("self_harm_risk",):
        value, safe_max = veto_threshold(base, conversations, scores, current, sh_start, grid, cal)
        if value == current["self_harm_risk"]:
            return None
        current["self_harm_risk"] = value
        best = summarise_replay(base.with_thresholds(current), conversations, scores)
        return {"label": "self_harm_risk", "valid_safe_max": safe_max}, best
    names_grid = joint_grid if len(names) > 1 else grid
    found = _best_combo(
        base, conversations, scores, current, names, names_grid, budget, cal.early_end_cost, cal.tie_tolerance
    )
    if found is None:
        return None
    combo, best = found
    current.update(dict(zip(names, combo, strict=True)))
    return {"label": "+".join(names)}, best


def tune_policy_thresholds(
    base: PolicyConfig,
    conversations: Sequence[Conversation],
    scores: Sequence[Sequence[Mapping[str, float]]],
    start: Mapping[str, float],
    cal: CalibrationConfig,
) -> tuple[dict[str, float], ReplaySummary, list[dict[str, Any]]]:
    """Coordinate search of the policy-facing thresholds on replayed valid conversations.

    Returns (thresholds, the valid replay summary at them, the search trace).
    """
    grid = sorted(cal.grid)
    joint_grid = sorted(cal.joint_grid)
    coords = _search_coords(cal.tuned_labels)
    current = {name: float(start.get(name, 0.5)) for name in MODEL_LABELS}
    sh_start = current["self_harm_risk"]
    # The target applies on top of the false terminations no threshold prevents (see the helper for why).
    floor = _unavoidable_false_terminations(base, conversations, scores, current, coords, max([*grid, *joint_grid]))
    budget = cal.target_false_termination_rate + floor.ftr
    best = summarise_replay(base.with_thresholds(current), conversations, scores)
    trace: list[dict[str, Any]] = [
        {
            "pass": 0,
            "label": None,
            "thresholds": dict(current),
            "unavoidable_false_terminations": floor.false_terminations,
            **best.to_dict(),
        }
    ]
    for p in range(1, cal.search_passes + 1):
        changed = False
        for names in coords:
            moved = _search_coordinate(
                base, conversations, scores, current, names, (grid, joint_grid), sh_start, budget, cal
            )
            if moved is None:
                continue
            step, best = moved
            changed = True
            trace.append({"pass": p, **step, "thresholds": dict(current), **best.to_dict()})
        if not changed:
            break
    return current, best, trace


def calibrated(logits: np.ndarray, temperatures: Mapping[str, float]) -> np.ndarray:
    from serving.calibration import temperature_vector

    return scores_from_logits(logits, temperature_vector(temperatures))
