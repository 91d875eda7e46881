"""Verify stage: the *serving* scorer replays the test split from the bundle.

`evaluate` measured PyTorch fp32 scores replayed through the policy; production
runs `Guard` on the int8 ONNX bundle. This stage runs the production path
(`Guard.observe`, turn by turn, as live; or `assess_many` in `batch` mode) over
every test conversation, computes the same conversation metrics
(pipeline.evaluation.replay_metrics), requires them to match evaluate's metrics/replay.json
within the tolerances in configs/export.yaml, and applies the quality gates
(configs/gates.yaml) again to the serving numbers. Writes metrics/serving.json;
exits 1 when a metric is off, a gate fails (if enforced), or any turn degraded.

    python -m pipeline.stages.verify [--bundle DIR] [--test-split FILE] [--metrics-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.common.cli import run_stage
from pipeline.common.config import ConfigError, active_profile, section
from pipeline.data.split_files import read_split
from pipeline.evaluation.config import CalibrationConfig, GatesConfig
from pipeline.evaluation.gates import check_gates, gates_report, log_gates
from pipeline.evaluation.replay_metrics import conversation_metrics
from pipeline.export.config import VerifyConfig
from serving.bundle import BundleError
from serving.decision import TurnResult
from serving.guard import Guard
from serving.policy import Action
from serving.schema import Conversation

log = logging.getLogger("pipeline.stages.verify")
#: The params this stage reads (dvc.yaml lists the same): (configs/<file>.yaml, section) -> its reader.
PARAMS = {
    ("export", "verify"): VerifyConfig,
    ("gates", "gates"): GatesConfig,
    ("policy", "calibration"): CalibrationConfig,
}

#: Overall replay metrics compared with evaluate (key -> where it lives in conversation_metrics output).
COMPARED = ("false_termination_rate", "termination_recall", "lateness_median", "early_terminations")


def _action(t: TurnResult) -> Action:
    return Action(t.index, t.role, t.action, t.reason, tuple(t.evidence))


def replay_live(guard: Guard, conversations: Sequence[Conversation], workers: int = 1) -> list[list[TurnResult]]:
    """Guard.observe turn by turn: exactly what production does for a live chat.

    `workers` threads share the one Guard, as a server's request threads do (each conversation stays on one
    thread; onnxruntime releases the GIL while it scores), so a 2-core host replays in about half the time."""

    def one(conv: Conversation) -> list[TurnResult]:
        state = guard.new_conversation()
        return [guard.observe(state, t.role, t.text) for t in conv.turns]

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(one, conversations)  # in order
        return list(tqdm(results, total=len(conversations), desc="verify (live)", unit="conv", file=sys.stderr))


def replay_batch(guard: Guard, conversations: Sequence[Conversation]) -> list[list[TurnResult]]:
    bar = tqdm(total=sum(len(c.turns) for c in conversations), desc="verify (batch)", unit="win", file=sys.stderr)
    decisions = guard.assess_many([(c.id, c.turns) for c in conversations], progress=bar.update)
    bar.close()
    return [list(d.turns) for d in decisions]


def compare(serving: Mapping[str, Any], evaluated: Mapping[str, Any], tolerance: Mapping[str, float]) -> dict[str, Any]:
    """Per metric: both values, |difference| and whether it is within tolerance (None == None matches)."""
    out: dict[str, Any] = {}
    pairs = {k: (serving["overall"].get(k), evaluated["overall"].get(k)) for k in COMPARED}
    pairs["self_harm_ended"] = (serving.get("self_harm_ended"), evaluated.get("self_harm_ended"))
    for key, (s, e) in pairs.items():
        tol = float(tolerance.get(key, 0.0))
        if s is None or e is None:
            ok, diff = s is None and e is None, None
        else:
            diff = abs(float(s) - float(e))
            ok = diff <= tol + 1e-12
        out[key] = {"serving": s, "evaluate": e, "abs_diff": diff, "tolerance": tol, "ok": ok}
    return out


@dataclass(frozen=True)
class Evaluated:
    """What verify compares the serving replay with: evaluate's metrics files."""

    replay: Mapping[str, Any]
    macro_f1: float
    baseline: Mapping[str, Any] | None


def read_evaluated(metrics_dir: Path) -> Evaluated:
    try:
        replay = json.loads((metrics_dir / "replay.json").read_text())
        ev = json.loads((metrics_dir / "eval.json").read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc.filename} not found: run evaluate first") from None
    baseline_path = metrics_dir / "baseline.json"
    baseline = json.loads(baseline_path.read_text()) if baseline_path.exists() else None
    return Evaluated(replay, float(ev["macro_f1"]), baseline)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline.stages.verify", description=__doc__.split("\n")[0])
    p.add_argument("--bundle", default="models/bundle")
    p.add_argument("--test-split", default="data/splits/test.parquet")
    p.add_argument(
        "--thresholds", default="models/thresholds.json", help="evaluate's output, checked against the bundle"
    )
    p.add_argument(
        "--metrics-dir", default="metrics", help="reads replay.json, eval.json, baseline.json; writes serving.json"
    )
    p.add_argument("--output", default=None, help="default: <metrics-dir>/serving.json")
    p.add_argument("--config-dir", default="configs")
    p.add_argument("--profile", default=None)
    p.add_argument("--mode", choices=("live", "batch"), default=None, help="override verify.mode")
    return p


def serving_report(
    args,
    guard: Guard,
    mode: str,
    test: Sequence[Conversation],
    results: list,
    seconds: float,
    diffs: dict,
    grep: dict,
    problems: list[str],
) -> dict[str, Any]:
    replay = conversation_metrics(test, [[_action(t) for t in r] for r in results])
    n_turns = sum(len(r) for r in results)
    return {
        "mode": mode,
        "model": guard.model.name,
        "bundle": str(args.bundle),
        "conversations": len(test),
        "turns": n_turns,
        "degraded_turns": sum(t.degraded for r in results for t in r),
        # turns near a threshold that the bundle's fp32 model scored again (serving/rescore.py)
        "rescore": guard.rescore.to_dict() if guard.rescore is not None else None,
        "rescored_turns": guard.stats().get("rescored", 0),
        "seconds": round(seconds, 2),
        "turns_per_s": round(n_turns / max(seconds, 1e-9), 1),
        "matches_evaluate": all(d["ok"] for d in diffs.values()),
        "comparison": diffs,
        "replay": {k: v for k, v in replay.items() if k != "rows"},
        "gates": grep,
        "passed": not problems,
        "problems": problems,
        "note": "beats_baseline is re-checked with evaluate's turn-level macro-F1 (verify replays conversations only)",
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    profile = args.profile or active_profile(Path(args.config_dir))
    vcfg = section(VerifyConfig, "export", "verify", profile, args.config_dir)
    gcfg = section(GatesConfig, "gates", "gates", profile, args.config_dir)
    target = section(CalibrationConfig, "policy", "calibration", profile, args.config_dir).target_false_termination_rate
    evaluated = read_evaluated(Path(args.metrics_dir))
    mode = args.mode or vcfg.mode
    try:
        guard = Guard.load(args.bundle, model=vcfg.model, batch_size=vcfg.batch_size)
    except BundleError as exc:
        print(f"verify failed: {exc}", file=sys.stderr)
        return 1
    problems: list[str] = []
    if Path(args.thresholds).exists():
        doc = json.loads(Path(args.thresholds).read_text())
        if {k: float(v) for k, v in doc.get("thresholds", {}).items()} != guard.manifest.thresholds:
            problems.append(f"bundle thresholds differ from {args.thresholds}: re-run export")
    test = read_split(args.test_split)
    t0 = time.perf_counter()
    results = replay_live(guard, test, vcfg.workers) if mode == "live" else replay_batch(guard, test)
    seconds = time.perf_counter() - t0
    replay = conversation_metrics(test, [[_action(t) for t in r] for r in results])
    diffs = compare(replay, evaluated.replay, vcfg.tolerance)
    gates = check_gates(replay, evaluated.macro_f1, evaluated.baseline, gcfg, target)
    log_gates(gates)
    grep = gates_report(gates, gcfg.enforce)
    degraded = sum(t.degraded for r in results for t in r)
    if degraded:
        problems.append(f"{degraded} turns degraded while replaying the test split")
    if not all(d["ok"] for d in diffs.values()):
        off = ", ".join(f"{k} {d['serving']} vs {d['evaluate']}" for k, d in diffs.items() if not d["ok"])
        problems.append("serving replay differs from evaluate: " + off)
    if not grep["passed"] and gcfg.enforce:
        problems.append("quality gates failed on the serving replay: " + ", ".join(grep["failed"]))
    out = serving_report(args, guard, mode, test, results, seconds, diffs, grep, problems)
    output = Path(args.output) if args.output else Path(args.metrics_dir) / "serving.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    ov = replay["overall"]
    print(
        f"serving replay ({mode}, {out['model']}, {out['rescored_turns']} turns re-scored): "
        f"{len(test)} conversations, {out['turns']} turns in {seconds:.1f}s; "
        f"FTR {ov['false_termination_rate']:.4f}, recall {ov['termination_recall']}, early {ov['early_terminations']}, "
        f"median lateness {ov['lateness_median']}, self-harm ended {replay['self_harm_ended']}; "
        f"matches evaluate: {out['matches_evaluate']}; gates passed: {grep['passed']}"
    )
    if problems:
        if not vcfg.enforce:
            print("verify problems (not enforced: verify.enforce is false): " + "; ".join(problems), file=sys.stderr)
            return 0
        print("verify failed: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_stage(main))
