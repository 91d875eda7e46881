"""Replays over dumped logits: `python -m experiments.ensemble_replay --dump D1 [D2 D3] --splits S [--relax] [--veto-split]`.

Why: docs/experiments/2026-12-04-seed-ensemble-and-soup.md. Given one dump (experiments/turn_scorer.py or
experiments/soup.py), or several whose mean raw logits are the seed ensemble, this calibrates by the shipped rule and
prints (a) the frontier of experiments/policy_frontier.py, (b) with --relax, what each policy condition costs in
recall on the synthetic test (the condition switched off alone), (c) with --veto-split, an end request's own turn
exempt from the self-harm veto below `v_self`. Everything after the model; seconds per dump.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from experiments import policy_frontier as pf
from experiments.turn_scorer import RawScores, topical
from pipeline.common.config import section
from pipeline.evaluation.config import CalibrationConfig
from pipeline.evaluation.report import conversation_scores
from pipeline.evaluation.thresholds import calibrated, summarise_replay
from pipeline.evaluation.transfer import contrast_sets, convabuse_chains, judge
from serving.policy import PolicyConfig

RELAX = {
    "every assistant turn a redirection": {"redirect": 0.0},
    "no self-harm veto": {"self_harm_risk": 1.0},
    "harmful and abuse at 0.5": {"harmful_request": 0.5, "abuse": 0.5},
    "end_request at 0.5": {"end_request": 0.5},
    "all but the veto": {"redirect": 0.0, "harmful_request": 0.5, "abuse": 0.5, "end_request": 0.5},
}


def mean_dump(dumps: list[Path], splits: str) -> tuple[RawScores, dict[str, pf.Scored]]:
    """The dumps' mean raw logits (the logit ensemble) as one model's."""
    loaded = [pf.load(d, splits) for d in dumps]
    raw, scored = loaded[0]
    for n in scored:
        mean = np.mean([np.asarray(s[n].logits) for _, s in loaded], axis=0)
        scored[n] = pf.Scored(scored[n].convs, scored[n].ws, mean)
    raw.memo = {
        k: [np.mean([r.memo[k][i] for r, _ in loaded], axis=0) for i in range(len(v))] for k, v in raw.memo.items()
    }
    return raw, scored


def exempt_end_requests(scores, th_end: float, v_self: float):
    """An end-request turn's own self_harm_risk vetoes only at or above `v_self` (earlier turns as before)."""
    out = []
    for conv in scores:
        out.append(
            [
                {**d, "self_harm_risk": 0.0}
                if d and d.get("end_request", 0) >= th_end and d.get("self_harm_risk", 0) < v_self
                else d
                for d in conv
            ]
        )
    return out


def replays(raw: RawScores, scored, sets, cal, base, args) -> None:
    c = pf.calibrations(scored["valid"], base, cal)["calibrated"]
    score = raw.calibrated(c.temperatures)
    avail = [s for s in sets if s.available]
    cache = {id(s.conversations): score(s.conversations) for s in avail}
    syn = {
        n: conversation_scores(scored[n].convs, scored[n].ws, calibrated(scored[n].logits, c.temperatures))
        for n in scored
    }
    th = c.policy.thresholds
    print("calibrated", {k: round(v, 3) for k, v in th.items()})

    def row(name: str, policy: PolicyConfig, f=lambda s: s) -> None:
        v, t = (summarise_replay(policy, scored[n].convs, f(syn[n])) for n in ("valid", "test"))
        real = {k: r["ended"] for k, r in judge(avail, lambda cv: f(cache[id(cv)]), policy, keep_examples=0).items()}
        print(f"  {name}: valid fe {v.false_terminations} recall {v.terminated}/{v.should_end} early {v.early} "
              f"sh {v.self_harm_ended_after_risk} | test fe {t.false_terminations} recall {t.terminated}/{t.should_end} "
              f"early {t.early} sh {t.self_harm_ended} | {real}")  # fmt: skip

    row("calibrated", c.policy)
    for name, relaxed in RELAX.items() if args.relax else ():
        row(name, c.policy.with_thresholds(relaxed))
    for v_self in (0.3, 0.5, 0.7) if args.veto_split else ():
        row(f"veto split {v_self}", c.policy, lambda s, v=v_self: exempt_end_requests(s, th["end_request"], v))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dump", type=Path, nargs="+", required=True, help="one dump, or several to average")
    ap.add_argument("--splits", required=True, help="the splits folder the dumps were scored on")
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--contrast", type=Path, default=Path("data/probes/contrast.yaml"))
    ap.add_argument("--topical-limit", type=int, default=600)
    ap.add_argument("--relax", action="store_true", help="each policy condition switched off alone")
    ap.add_argument("--veto-split", action="store_true", help="an end request's own turn exempt from the veto")
    args = ap.parse_args(argv)
    cal = section(CalibrationConfig, "policy", "calibration", "default")
    base = section(PolicyConfig.from_dict, "policy", "policy", "default")
    ds = args.datasets
    sets = [topical(ds, args.topical_limit), convabuse_chains(ds / "convabuse", abusive=True)]
    sets += [convabuse_chains(ds / "convabuse", abusive=False), *contrast_sets(args.contrast)]
    raw, scored = mean_dump(args.dump, args.splits) if len(args.dump) > 1 else pf.load(args.dump[0], args.splits)
    replays(raw, scored, sets, cal, base, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
