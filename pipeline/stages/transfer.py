"""Transfer: the shipped bundle judged on real conversations nobody here wrote, as production would replay them.

Why: the synthetic test shares the generator's habits; these sets (pipeline/evaluation/transfer.py) are built
from public datasets read by path (`eval.transfer.datasets`, never copied, never trained on) and from the contrast
probes. Each conversation is replayed through the bundle's own policy over the bundle's scores (`Guard`), so
the counts are what users would meet. A dataset that is not there is reported unavailable, not an error: a
fresh clone without the data still runs the pipeline.

    python -m pipeline.stages.transfer [--bundle models/bundle] [--contrast data/probes/contrast.yaml]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.common.cli import run_stage
from pipeline.common.config import ConfigError, section
from pipeline.evaluation.config import TransferConfig
from pipeline.evaluation.transfer import (
    contrast_sets,
    convabuse_chains,
    convabuse_zero_shot,
    guard_scorer,
    judge,
    topical_chat,
)

log = logging.getLogger(__name__)
#: The params this stage reads (dvc.yaml lists the same): (configs/<file>.yaml, section) -> its reader.
PARAMS = {("eval", "transfer"): TransferConfig}


def run_transfer(guard: Any, cfg: TransferConfig, contrast: Path) -> dict[str, Any]:
    """Every transfer set judged by `guard`'s scores and policy, plus the abuse head's zero-shot ConvAbuse F1."""
    root = Path(cfg.datasets)
    sets = [
        topical_chat(root / "topical_chat", cfg.topical_splits, cfg.topical_limit),
        convabuse_chains(root / "convabuse", abusive=True),
        convabuse_chains(root / "convabuse", abusive=False),
        *contrast_sets(contrast),
    ]
    score = guard_scorer(guard)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"datasets": str(root), "sets": judge(sets, score, guard.policy)}
    out["convabuse_zero_shot"] = convabuse_zero_shot(score, root / "convabuse", guard.policy.thresholds["abuse"])
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def headline(result: Mapping[str, Any]) -> dict[str, float]:
    """The numbers a reviewer compares across runs: share of each set ended, and the zero-shot abuse F1."""
    metrics = {
        f"transfer.{name}.ended_share": s["ended_share"]
        for name, s in result["sets"].items()
        if s.get("available") and s["ended_share"] is not None
    }
    zs = result["convabuse_zero_shot"]
    if zs.get("available"):
        metrics.update(
            {
                "transfer.convabuse_zero_shot.macro_f1": zs["macro_f1"],
                "transfer.convabuse_zero_shot.roc_auc": zs["roc_auc"],
            }
        )
    return metrics


def log_to_mlflow(run_id: str, result: Mapping[str, Any], output: Path) -> None:
    """Add the headline transfer numbers and the metrics file to the run that trained the bundle's model."""
    from pipeline.common import tracking

    tracking.add_to_run(run_id, headline(result), output, "transfer results")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="models/bundle")
    parser.add_argument("--contrast", default="data/probes/contrast.yaml")
    parser.add_argument("--output", default="metrics/transfer.json")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (a batch job)")
    parser.add_argument("--no-mlflow", action="store_true", help="skip MLflow logging (tests)")
    args = parser.parse_args(argv)

    from serving.bundle import BundleError
    from serving.guard import Guard

    cfg = section(TransferConfig, "eval", "transfer")
    try:
        guard = Guard.load(args.bundle, rescore=True, threads=args.threads)
        result = run_transfer(guard, cfg, Path(args.contrast))
    except (BundleError, ValueError, OSError) as exc:
        raise ConfigError(f"transfer: {exc}") from None
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for name, s in result["sets"].items():
        if s.get("available"):
            should = "should end" if s["should_end"] else "never end"
            log.info("%-24s %4d/%4d ended (%s)", name, s["ended"], s["conversations"], should)
        else:
            log.info("%-24s unavailable: %s", name, s["why"])
    run_id = guard.manifest.mlflow_run_id
    if run_id and not args.no_mlflow:
        log_to_mlflow(run_id, result, Path(args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
