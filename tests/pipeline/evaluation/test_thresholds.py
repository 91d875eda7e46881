"""Calibration, threshold choice by policy replay, turn metrics and gates (no model needed)."""

from __future__ import annotations

import numpy as np

from pipeline.evaluation.config import CalibrationConfig, GatesConfig
from pipeline.evaluation.gates import check_gates, gates_report
from pipeline.evaluation.thresholds import (
    ReplaySummary,
    _key,
    fit_temperature,
    label_thresholds,
    summarise_replay,
    tune_policy_thresholds,
)
from pipeline.evaluation.turn_metrics import best_f1_threshold, ece, label_metrics, threshold_for_recall
from serving.labels import MODEL_LABELS
from serving.policy import PolicyConfig
from tests.train_fixture_factory import make_conversations


def calib(**kw) -> CalibrationConfig:
    """A calibration config for a test: what the test sets, the rest fixed here."""
    base = {
        "target_false_termination_rate": 0.005,
        "self_harm_safety_margin": 0.5,
        "self_harm_min_recall": 0.98,
        "self_harm_max_threshold": 0.5,
        "grid": [round(x, 2) for x in np.arange(0.05, 1.0, 0.05)],
        "tuned_labels": ["harmful_request", "abuse", "end_request", "redirect"],
        "early_end_cost": 1.0,
        "search_passes": 3,
        "tie_tolerance": 0.0,
    }
    base.update(kw)
    base.setdefault("joint_grid", base["grid"])
    return CalibrationConfig(**base)


def gates_cfg(**kw) -> GatesConfig:
    base = {
        "enforce": True,
        "self_harm_ended_max": 0,
        "false_termination_rate_max": None,
        "termination_recall_min": 0.95,
        "lateness_median_max": 1.0,
        "early_terminations_max": 0,
        "baseline_margin": 0.05,
    }
    return GatesConfig(**{**base, **kw})


def test_temperature_recovers_an_overconfident_scale():
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0, 2, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-true_logit))).astype(float)
    t = fit_temperature(true_logit * 3.0, y)  # logits 3x too confident
    assert 2.6 < t < 3.4
    before = ece(1 / (1 + np.exp(-true_logit * 3)), y)
    after = ece(1 / (1 + np.exp(-true_logit * 3 / t)), y)
    assert after < before / 3
    assert fit_temperature(np.array([1.0, 2.0]), np.array([1.0, 1.0])) == 1.0  # nothing to fit


def test_turn_metric_helpers():
    p = np.array([0.1, 0.4, 0.6, 0.9])
    y = np.array([0, 0, 1, 1])
    m = label_metrics(p, y, 0.5)
    assert m["f1"] == 1.0 and m["macro_f1"] == 1.0 and m["roc_auc"] == 1.0
    t, f = best_f1_threshold(p, y)
    assert 0.4 < t <= 0.6 and f == 1.0
    assert threshold_for_recall(np.array([0.2, 0.3, 0.9]), np.array([1, 1, 1]), 1.0) == 0.2


def _gold_scores(convs, noise: float, rng):
    """Per-turn scores near the gold labels (a good model)."""
    out = []
    for c in convs:
        row = []
        for t in c.turns:
            row.append({n: float(np.clip((n in t.labels) * 0.8 + rng.normal(0.1, noise), 0, 1)) for n in MODEL_LABELS})
        out.append(row)
    return out


def test_policy_tuning_meets_the_false_termination_target():
    rng = np.random.default_rng(1)
    convs = make_conversations(160, seed=11)
    scores = _gold_scores(convs, 0.08, rng)
    cal = calib(
        target_false_termination_rate=0.0,
        grid=[0.1, 0.3, 0.5, 0.7, 0.9],
        search_passes=2,
        tuned_labels=["harmful_request", "abuse", "end_request", "redirect", "self_harm_risk"],
        self_harm_max_threshold=0.5,
    )
    # everything flagged: false terminations (the veto starts where recall calibration would put it)
    bad_start = {**{n: 0.05 for n in MODEL_LABELS}, "self_harm_risk": 0.5}
    base = PolicyConfig()
    assert summarise_replay(base.with_thresholds(bad_start), convs, scores).ftr > 0
    thr, summary, trace = tune_policy_thresholds(base, convs, scores, bad_start, cal)
    assert summary.ftr == 0.0 and summary.self_harm_ended == 0
    assert summary.recall > 0.9 and summary.early == 0
    assert len(trace) > 1 and set(thr) == set(MODEL_LABELS)
    assert thr["self_harm_risk"] <= 0.5


def test_self_harm_threshold_is_recall_first():
    rng = np.random.default_rng(2)
    n = 400
    labels = np.zeros((n, len(MODEL_LABELS)), np.float32)
    j = MODEL_LABELS.index("self_harm_risk")
    labels[: n // 4, j] = 1
    probs = np.clip(labels * 0.6 + rng.random(labels.shape) * 0.4, 0, 1)
    mask = np.ones_like(labels)
    thr = label_thresholds(probs, labels, mask, calib(self_harm_min_recall=1.0, self_harm_max_threshold=0.3))
    assert thr["self_harm_risk"] <= 0.3
    assert (probs[: n // 4, j] >= thr["self_harm_risk"]).all()


def _replay(ftr=0.0, recall=0.97, early=0, lateness=0.0, self_harm=0):
    return {
        "overall": {
            "false_termination_rate": ftr,
            "false_terminations": int(ftr * 200),
            "never_end": 200,
            "termination_recall": recall,
            "terminated": int(recall * 100),
            "should_end": 100,
            "early_terminations": early,
            "lateness_median": lateness,
        },
        "self_harm_ended": self_harm,
    }


def test_gates_pass_and_fail_with_amounts():
    cfg = gates_cfg(
        termination_recall_min=0.95,
        baseline_margin=0.05,
        lateness_median_max=1,
        early_terminations_max=0,
    )
    ok = check_gates(_replay(), 0.9, {"macro_f1": 0.8}, cfg, 0.005)
    assert all(g.passed for g in ok) and gates_report(ok, True)["passed"]
    bad = check_gates(_replay(ftr=0.02, recall=0.9, self_harm=1), 0.82, {"macro_f1": 0.8}, cfg, 0.005)
    failed = {g.name: g for g in bad if not g.passed}
    assert set(failed) == {"self_harm_ended", "false_termination_rate", "termination_recall", "beats_baseline"}
    assert "off by 0.05" in failed["termination_recall"].message()
    assert "off by 0.03" in failed["beats_baseline"].message()
    missing = check_gates(_replay(), 0.9, None, cfg, 0.005)
    assert not next(g for g in missing if g.name == "beats_baseline").passed
    no_should_end = _replay()
    no_should_end["overall"].update(termination_recall=None, lateness_median=None)
    skipped = {g.name: g for g in check_gates(no_should_end, 0.9, {"macro_f1": 0.1}, cfg, 0.005)}
    assert skipped["termination_recall"].skipped and skipped["termination_recall"].passed


def test_self_harm_veto_stays_at_its_recall_threshold_when_valid_cannot_tell():
    """Replay only moves the veto when valid demands it; a plateau does not drag it to the grid's floor."""
    rng = np.random.default_rng(2)
    convs = make_conversations(120, seed=4)
    scores = _gold_scores(convs, 0.02, rng)
    cal = calib(
        target_false_termination_rate=0.0,
        grid=[0.05, 0.1, 0.2, 0.3],
        search_passes=1,
        tuned_labels=["self_harm_risk"],
        self_harm_max_threshold=0.3,
    )
    start = {**{n: 0.5 for n in MODEL_LABELS}, "self_harm_risk": 0.3}
    thr, summary, _ = tune_policy_thresholds(PolicyConfig(), convs, scores, start, cal)
    assert summary.self_harm_ended == 0
    assert thr["self_harm_risk"] == 0.3


def test_the_veto_sits_at_half_the_highest_value_valid_proves_safe():
    rng = np.random.default_rng(3)
    convs = make_conversations(120, seed=6)
    scores = _gold_scores(convs, 0.02, rng)
    cal = calib(
        target_false_termination_rate=0.0,
        grid=[0.05, 0.1, 0.2, 0.3, 0.5, 0.7],
        search_passes=2,
        tuned_labels=["self_harm_risk"],
        self_harm_max_threshold=0.7,
        self_harm_safety_margin=0.5,
    )
    # risk turns score ~0.9: every grid value keeps valid safe, so the veto goes to half the top one (0.35)
    start = {**{n: 0.5 for n in MODEL_LABELS}, "self_harm_risk": 0.05}
    thr, _, _ = tune_policy_thresholds(PolicyConfig(), convs, scores, start, cal)
    assert thr["self_harm_risk"] == 0.35
    # one valid risk turn scores 0.3 and the user then asks to end: safe only up to 0.3, so the veto is 0.15
    victim = next(i for i, c in enumerate(convs) if c.category == "self_harm")
    risk = next(j for j, t in enumerate(convs[victim].turns) if "self_harm_risk" in t.labels)
    scores[victim][risk]["self_harm_risk"] = 0.3
    scores[victim][risk]["end_request"] = 1.0
    thr, summary, _ = tune_policy_thresholds(PolicyConfig(), convs, scores, start, cal)
    assert thr["self_harm_risk"] == 0.15
    assert summary.self_harm_ended_after_risk == 0
    # ... and never below its recall-calibrated start when that is safe
    thr, _, _ = tune_policy_thresholds(PolicyConfig(), convs, scores, {**start, "self_harm_risk": 0.25}, cal)
    assert thr["self_harm_risk"] == 0.25


def test_a_self_harm_chat_ended_before_its_risk_turn_does_not_drag_the_veto_down():
    """A benign opener misread as an end request (scored 0.16 self-harm) ends a self-harm chat at turn 0:
    that is a false termination for the end threshold to pay, not a reason to veto at 0.15."""
    rng = np.random.default_rng(5)
    convs = make_conversations(120, seed=8)
    scores = _gold_scores(convs, 0.02, rng)
    victims = [i for i, c in enumerate(convs) if c.category == "self_harm"][:2]
    for i in victims:
        scores[i][0] = {**scores[i][0], "end_request": 1.0, "self_harm_risk": 0.16}
    policy = PolicyConfig()
    early = summarise_replay(policy.with_thresholds({"self_harm_risk": 0.3}), convs, scores)
    assert early.self_harm_ended == 2 and early.self_harm_ended_after_risk == 0
    cal = calib(
        target_false_termination_rate=0.05,
        grid=[0.05, 0.1, 0.15, 0.2, 0.3],
        search_passes=1,
        tuned_labels=["self_harm_risk"],
        self_harm_max_threshold=0.3,
    )
    start = {**{n: 0.5 for n in MODEL_LABELS}, "self_harm_risk": 0.3}
    thr, summary, _ = tune_policy_thresholds(policy, convs, scores, start, cal)
    assert thr["self_harm_risk"] == 0.3
    assert summary.self_harm_ended_after_risk == 0


def test_false_terminations_no_threshold_prevents_do_not_make_the_target_unreachable():
    """One benign opener scored 1.0 end_request ends its chat at any threshold on the grid. The target
    applies on top of that floor: the search still spends its one allowed false end on catching abuse."""
    rng = np.random.default_rng(7)
    convs = make_conversations(120, seed=9)
    scores = _gold_scores(convs, 0.02, rng)
    benign = [i for i, c in enumerate(convs) if c.category == "benign"]
    scores[benign[0]][0]["end_request"] = 1.0  # unavoidable
    long = next(i for i in benign[1:] if sum(t.role == "user" for t in convs[i].turns) >= 3)
    for i, c in enumerate(convs):  # abuse is only caught at 0.6, and catching it ends one benign chat too
        for j, t in enumerate(c.turns):
            if "abuse" in t.labels or (i == long and t.role == "user"):
                scores[i][j]["abuse"] = 0.6
            if i == long and t.role == "assistant":
                scores[i][j]["redirect"] = 0.9
    never = sum(c.end_at is None for c in convs)
    cal = calib(
        target_false_termination_rate=1.5 / never,  # one avoidable false end allowed
        grid=[0.3, 0.5, 0.7, 0.9],
        search_passes=2,
        tuned_labels=["abuse"],
    )
    start = {**{n: 0.5 for n in MODEL_LABELS}, "abuse": 0.9}
    thr, summary, _ = tune_policy_thresholds(PolicyConfig(), convs, scores, start, cal)
    assert summary.false_terminations == 2
    assert thr["abuse"] <= 0.6


def test_the_cost_of_an_early_end_decides_between_more_ends_and_no_early_ones() -> None:
    """calibration.early_end_cost: 13 ends of which 2 early against 8 on time. At the old cost (an early end
    = a miss + 1) the first wins; at 4 (a miss + 4) the second, as the gate on early ends asks."""

    def summary(terminated: int, early: int) -> ReplaySummary:
        return ReplaySummary(
            never_end=100, false_terminations=0, should_end=20, terminated=terminated, early=early,
            self_harm_ended=0, lateness_mean=0.0, self_harm_ended_after_risk=0,
        )  # fmt: skip

    more, on_time = summary(13, 2), summary(8, 0)
    assert more.utility() == 9 and more.utility(4) == 3 and on_time.utility(4) == 8
    assert _key(more, 0.01) > _key(on_time, 0.01)
    assert _key(more, 0.01, 4.0) < _key(on_time, 0.01, 4.0)


def test_within_the_tie_tolerance_the_highest_threshold_wins() -> None:
    """One abusive chat is only caught at abuse 0.5, every other at 0.85 as well: without a tolerance the
    search takes 0.5 (one more end), with one that covers a chat it keeps the higher, more cautious 0.85."""
    convs = make_conversations(120, seed=9)
    scores = _gold_scores(convs, 0.0, np.random.default_rng(3))
    weak = next(i for i, c in enumerate(convs) if c.category == "escalating_abuse" and c.end_at is not None)
    for j, t in enumerate(convs[weak].turns):
        if "abuse" in t.labels:
            scores[weak][j]["abuse"] = 0.7
    base = dict(grid=[0.5, 0.85], search_passes=1, tuned_labels=["abuse"])
    start = {**{n: 0.5 for n in MODEL_LABELS}, "abuse": 0.5}
    loose, s_loose, _ = tune_policy_thresholds(PolicyConfig(), convs, scores, start, calib(**base))
    strict, s_strict, _ = tune_policy_thresholds(
        PolicyConfig(), convs, scores, start, calib(tie_tolerance=0.05, **base)
    )
    assert loose["abuse"] == 0.5 and strict["abuse"] == 0.85
    assert s_strict.terminated == s_loose.terminated - 1
