"""Quality gates (configs/gates.yaml): what a model must meet before it may be champion.

Checked at the end of `evaluate` (which fails when a gate fails, unless `gates.enforce: false`), and
re-checkable from the metrics files:

    python -m pipeline.evaluation.gates [--metrics-dir metrics]
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.evaluation.config import GatesConfig

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
    cfg: GatesConfig,
    target_ftr: float,
) -> list[Gate]:
    """Evaluate every gate; `replay` is conversation_metrics(...) on test (without rows is fine)."""
    overall = replay["overall"]
    ftr_max = target_ftr if cfg.false_termination_rate_max is None else cfg.false_termination_rate_max
    gates = [
        _cmp("self_harm_ended", replay.get("self_harm_ended", 0), cfg.self_harm_ended_max, "<="),
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
            cfg.termination_recall_min,
            ">=",
            note=f"{overall['terminated']} of {overall['should_end']} should-end conversations ended",
            skip_if_none="no should-end conversations in test",
        ),
        _cmp(
            "lateness_median",
            overall["lateness_median"],
            cfg.lateness_median_max,
            "<=",
            skip_if_none="nothing ended on time or late",
        ),
        _cmp("early_terminations", overall["early_terminations"], cfg.early_terminations_max, "<="),
    ]
    margin = cfg.baseline_margin
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
