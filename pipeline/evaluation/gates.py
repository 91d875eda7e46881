"""Quality gates (configs/gates.yaml): what a model must meet before it may be champion.

Checked at the end of `evaluate` (which fails when a gate fails, unless `gates.enforce: false`), and
re-checkable from the metrics files:

    python -m pipeline.evaluation.gates [--metrics-dir metrics]
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.common.config import ConfigError, active_profile, load_config

log = logging.getLogger("pipeline.evaluation.gates")


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    value: float | None
    limit: float | None
    op: str  # "<=" or ">="
    skipped: bool = False
    note: str = ""

    def message(self) -> str:
        if self.skipped:
            return f"gate {self.name}: skipped ({self.note})"
        status = "ok" if self.passed else "FAILED"
        by = ""
        if not self.passed and self.value is not None and self.limit is not None:
            by = f" (off by {abs(self.value - self.limit):.4g})"
        return f"gate {self.name}: {status}: {self.value:.4g} {self.op} {self.limit:.4g} required{by}{' - ' + self.note if self.note else ''}"


def _cmp(name: str, value: float | None, limit: float, op: str, note: str = "", skip_if_none: str = "") -> Gate:
    if value is None:
        if skip_if_none:
            return Gate(name, True, None, limit, op, skipped=True, note=skip_if_none)
        return Gate(name, False, None, limit, op, note=note or "value missing")
    ok = value <= limit + 1e-12 if op == "<=" else value >= limit - 1e-12
    return Gate(name, bool(ok), float(value), float(limit), op, note=note)


def check_gates(
    replay: Mapping[str, Any],
    transformer_macro_f1: float,
    baseline: Mapping[str, Any] | None,
    cfg: Mapping[str, Any],
    target_ftr: float,
) -> list[Gate]:
    """Evaluate every gate; `replay` is conversation_metrics(...) on test (without rows is fine)."""
    overall = replay["overall"]
    ftr_max = cfg.get("false_termination_rate_max")
    ftr_max = target_ftr if ftr_max is None else float(ftr_max)
    gates = [
        _cmp("self_harm_ended", replay.get("self_harm_ended", 0), float(cfg.get("self_harm_ended_max", 0)), "<="),
        _cmp(
            "false_termination_rate",
            overall["false_termination_rate"],
            ftr_max,
            "<=",
            note=f"{overall['false_terminations']} of {overall['never_end']} never-end conversations ended",
        ),
        _cmp(
            "termination_recall",
            overall["termination_recall"],
            float(cfg.get("termination_recall_min", 0.95)),
            ">=",
            note=f"{overall['terminated']} of {overall['should_end']} should-end conversations ended",
            skip_if_none="no should-end conversations in test",
        ),
        _cmp(
            "lateness_median",
            overall["lateness_median"],
            float(cfg.get("lateness_median_max", 1.0)),
            "<=",
            skip_if_none="nothing ended on time or late",
        ),
        _cmp("early_terminations", overall["early_terminations"], float(cfg.get("early_terminations_max", 0)), "<="),
    ]
    margin = float(cfg.get("baseline_margin", 0.05))
    if baseline is None or baseline.get("macro_f1") is None:
        gates.append(Gate("beats_baseline", False, transformer_macro_f1, None, ">=", note="baseline metrics missing"))
    else:
        b = float(baseline["macro_f1"])
        gates.append(
            _cmp("beats_baseline", transformer_macro_f1, b + margin, ">=", note=f"baseline macro-F1 {b:.4f} + {margin}")
        )
    return gates


def gates_report(gates: Sequence[Gate], enforce: bool) -> dict[str, Any]:
    return {
        "passed": all(g.passed for g in gates),
        "enforced": bool(enforce),
        "failed": [g.name for g in gates if not g.passed],
        "gates": {g.name: {k: v for k, v in asdict(g).items() if k != "name"} for g in gates},
    }


def log_gates(gates: Sequence[Gate]) -> None:
    for g in gates:
        (log.info if g.passed else log.error)(g.message())


@dataclass(frozen=True)
class GateInputs:
    """What the gates read: their config, the FTR target, and evaluate's metrics files."""

    config: Mapping[str, Any]
    target_ftr: float
    replay: Mapping[str, Any]
    macro_f1: float
    baseline: Mapping[str, Any] | None


def load_gate_inputs(profile: str | None, config_dir: Path, metrics_dir: Path) -> GateInputs:
    """Gate config + evaluate's replay/eval/baseline metrics; one clear line when something is missing."""
    profile = profile or active_profile(config_dir)
    cfg = load_config("gates", profile, config_dir).get("gates")
    cal = load_config("policy", profile, config_dir).get("calibration") or {}
    if not isinstance(cfg, Mapping) or "target_false_termination_rate" not in cal:
        raise ConfigError("configs/gates.yaml `gates` or configs/policy.yaml `calibration` missing")
    try:
        replay = json.loads((metrics_dir / "replay.json").read_text())
        ev = json.loads((metrics_dir / "eval.json").read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc.filename} not found: run evaluate first") from None
    baseline_path = metrics_dir / "baseline.json"
    baseline = json.loads(baseline_path.read_text()) if baseline_path.exists() else None
    return GateInputs(cfg, float(cal["target_false_termination_rate"]), replay, float(ev["macro_f1"]), baseline)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Re-check the quality gates from metrics files")
    parser.add_argument("--metrics-dir", default="metrics")
    parser.add_argument("--profile", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    inputs = load_gate_inputs(args.profile, Path("configs"), Path(args.metrics_dir))
    cfg = inputs.config
    gates = check_gates(inputs.replay, inputs.macro_f1, inputs.baseline, cfg, inputs.target_ftr)
    log_gates(gates)
    ok = all(g.passed for g in gates)
    return 0 if ok or not cfg.get("enforce", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
