"""Card: MODEL_CARD.md and metrics/summary.json from the metrics files of the run (pipeline/evaluation/model_card.py).

Why a stage: the card states the numbers of the run that produced the committed bundle, so it is rebuilt whenever
one of the metrics files it reads changes, and cannot drift from them. It reads nothing else but the policy and
base-model params it describes; a missing metrics file stops it with one line naming the stage to run.

    python -m pipeline.stages.card [--metrics-dir metrics] [--output MODEL_CARD.md] [--summary metrics/summary.json]
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from pipeline.common.cli import run_stage
from pipeline.common.config import section
from pipeline.evaluation.model_card import load_metrics, render, summary
from pipeline.model.config import ModelConfig
from serving.policy import PolicyConfig

log = logging.getLogger(__name__)
#: The params this stage reads (dvc.yaml lists the same): the policy and base model the card describes.
PARAMS = {("policy", "policy"): PolicyConfig.from_dict, ("train", "model"): ModelConfig}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--metrics-dir", default="metrics", help="where the metrics files are read (default: %(default)s)"
    )
    parser.add_argument("--output", default="MODEL_CARD.md", help="the card written (default: %(default)s)")
    parser.add_argument("--summary", default="metrics/summary.json", help="headline numbers (default: %(default)s)")
    args = parser.parse_args(argv)

    metrics = load_metrics(args.metrics_dir)
    policy = section(PolicyConfig.from_dict, "policy", "policy")
    model = section(ModelConfig, "train", "model")
    text = render(metrics, policy, model.base_model)
    head = summary(metrics)
    Path(args.output).write_text(text, encoding="utf-8")
    Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
    Path(args.summary).write_text(json.dumps(head, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s (%d lines) and %s: %s", args.output, text.count("\n"), args.summary, head)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
