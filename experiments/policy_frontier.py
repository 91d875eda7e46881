"""What the flag thresholds trade on real text: `python -m experiments.policy_frontier --dump D [--dump D2 ...]`.

Why: the threshold search sees only synthetic valid chats, whose scores are nearly 0 or 1, so a wide plateau of
thresholds looks equally good there and a few extreme chats pick one. This replays one model's dumped raw logits
(experiments/turn_scorer.py --dump) over a grid of harmful_request/abuse thresholds, everything else as
calibrated, and counts per transfer set and on the synthetic test what each choice ends: the frontier a
calibration rule must pick from.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pickle
from pathlib import Path
from typing import Any

import serving.policy as policy_module
from experiments.turn_scorer import RawScores, topical, turn_set_windows
from pipeline.common.config import section
from pipeline.data.split_files import read_split, split_path
from pipeline.evaluation.config import CalibrationConfig
from pipeline.evaluation.report import conversation_scores
from pipeline.evaluation.thresholds import calibrated, summarise_replay
from pipeline.evaluation.transfer import contrast_sets, convabuse_chains, judge
from pipeline.stages.evaluate import Scored, calibrate
from serving.policy import CONTINUE, END, R_ABUSE, R_FLAGGED, R_HARMFUL, Action, PolicyConfig, PolicyState

_step = policy_module.step

GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)
VETO_GRID = (0.05, 0.1, 0.2, 0.3)
#: Evidence variant: (flag floor, mean probability the last `min_flagged` flagged turns must reach).
EVIDENCE_GRID = tuple((f, m) for f in (0.5, 0.7) for m in (0.9, 0.95, 0.98))
_EVIDENCE = {"mean_logit": None}


def _short(th) -> str:
    return "/".join(f"{th[k]:.2f}" for k in ("harmful_request", "abuse", "end_request", "self_harm_risk", "redirect"))


def _logit(p: float) -> float:
    p = min(max(p, 1e-3), 1 - 1e-3)
    return math.log(p / (1 - p))


def step_evidence(config: PolicyConfig, state: PolicyState, role: str, scores) -> Action:
    """serving.policy.step, except that a flag needs only the (lower) threshold and the end also needs the mean
    log-odds of the last `min_flagged` flagged turns >= _EVIDENCE["mean_logit"]: three 0.95 turns are strong
    evidence, one 0.99 among 0.6s is not. A replay-only prototype (patched in for the frontier)."""
    evidence = state.__dict__.setdefault("evidence", {})  # turn index -> log-odds of its flag
    action = _step(config, state, role, scores)
    if state.flagged and state.flagged[-1][0] == action.index:
        evidence[action.index] = max(_logit(scores.get(k, 0.0)) for k in state.flagged[-1][1])
    if action.action == END and action.reason in (R_HARMFUL, R_ABUSE):
        recent = [evidence[i] for i, _ in state.flagged[-config.min_flagged :]]
        if sum(recent) / len(recent) < _EVIDENCE["mean_logit"]:
            state.end_turn = state.end_reason = None
            state.end_evidence = ()
            return Action(action.index, role, CONTINUE, R_FLAGGED, tuple(f[0] for f in state.flagged))
    return action


def load(dump: Path, splits: str) -> tuple[RawScores, dict[str, Scored]]:
    payload = pickle.loads(dump.read_bytes())
    convs = {n: read_split(split_path(splits, n)) for n in ("valid", "test")}
    scored = {n: Scored(convs[n], turn_set_windows(convs[n]), payload["logits"][n]) for n in convs}
    raw = RawScores(None)
    raw.memo = payload["memo"]
    return raw, scored


def calibrations(valid: Scored, base, cal) -> dict[str, Any]:
    """evaluate's calibration (configs/policy.yaml), and the rule before 2026-12-04 beside it: harmful_request and
    abuse searched jointly, ties to the middle of the plateau."""
    old = [["harmful_request", "abuse"] if e == "harmful_request" else e for e in cal.tuned_labels if e != "abuse"]
    previous = dataclasses.replace(cal, tuned_labels=old, tie_tolerance=0.0)
    return {"calibrated": calibrate(valid, base, cal, None), "previous": calibrate(valid, base, previous, None)}


def frontier(raw: RawScores, scored: dict[str, Scored], sets, cal, base) -> dict[str, Any]:
    cals = calibrations(scored["valid"], base, cal)
    c = cals["calibrated"]
    score = raw.calibrated(c.temperatures)
    test = scored["test"]
    tscores = conversation_scores(test.convs, test.ws, calibrated(test.logits, c.temperatures))
    avail = [ts for ts in sets if ts.available]
    cached = {id(ts.conversations): score(ts.conversations) for ts in avail}  # the model once per set

    def lookup(convs):
        return cached[id(convs)]

    vconvs = scored["valid"]
    vscores = conversation_scores(vconvs.convs, vconvs.ws, calibrated(vconvs.logits, c.temperatures))
    points = [("calibrated", {}, None)]
    for name in ("previous",):
        points.append((f"{name} {_short(cals[name].policy.thresholds)}", dict(cals[name].policy.thresholds), None))
    points += [(f"flag {t}", {"harmful_request": t, "abuse": t}, None) for t in GRID]
    points += [(f"harmful {t}", {"harmful_request": t}, None) for t in (0.9, 0.95, 0.98)]
    points += [(f"veto {v}", {"self_harm_risk": v}, None) for v in VETO_GRID]
    points += [(f"evidence {f}/{m}", {"harmful_request": f, "abuse": f}, m) for f, m in EVIDENCE_GRID]
    rows = []
    for name, th, mean in points:
        policy = c.policy.with_thresholds(th)
        policy_module.step = step_evidence if mean else _step
        _EVIDENCE["mean_logit"] = _logit(mean) if mean else None
        try:
            v = summarise_replay(policy, vconvs.convs, vscores)
            s = summarise_replay(policy, test.convs, tscores)
            real = {k: r["ended"] for k, r in judge(avail, lookup, policy, keep_examples=0).items()}
        finally:
            policy_module.step = _step
        rows.append(
            {
                "point": name,
                "valid_fe": v.false_terminations,
                "valid_recall": f"{v.terminated}/{v.should_end}",
                "valid_early": v.early,
                "valid_sh": v.self_harm_ended_after_risk,
                "test_fe": s.false_terminations,
                "test_recall": f"{s.terminated}/{s.should_end}",
                "test_early": s.early,
                "test_sh": s.self_harm_ended,
                **real,
            }
        )
    sizes = {ts.name: len(ts.conversations) for ts in avail}
    return {"thresholds": {k: round(v, 3) for k, v in c.policy.thresholds.items()}, "rows": rows, "sizes": sizes}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dump", type=Path, nargs="+", required=True)
    ap.add_argument(
        "--splits", nargs="+", required=True, help="one splits folder per dump (the data it was trained on)"
    )
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--contrast", type=Path, default=Path("data/probes/contrast.yaml"))
    ap.add_argument("--topical-limit", type=int, default=600)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    cal = section(CalibrationConfig, "policy", "calibration", "default")
    base = section(PolicyConfig.from_dict, "policy", "policy", "default")
    sets = [
        topical(args.datasets, args.topical_limit),
        convabuse_chains(args.datasets / "convabuse", abusive=True),
        convabuse_chains(args.datasets / "convabuse", abusive=False),
        *contrast_sets(args.contrast),
    ]
    out = {}
    for dump, splits in zip(args.dump, args.splits, strict=True):
        raw, scored = load(dump, splits)
        out[str(dump)] = res = frontier(raw, scored, sets, cal, base)
        print(f"== {dump}  sizes {res['sizes']}  calibrated {res['thresholds']}")
        for r in res["rows"]:
            print("  " + "  ".join(f"{k}={v}" for k, v in r.items()))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
