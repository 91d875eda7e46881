"""What a reviewer reads first in the MLflow run: the gate verdict and a handful of headline numbers.

Why: the run holds ~140 metrics with dotted names; sorted alphabetically, the baseline's come first and the
verdict is nowhere. `evaluate` (where the verdict is known) logs the headline numbers under `headline/`
(their own chart section) and writes the run description (`mlflow.note.content`, markdown) from the same
metrics files the gates read; the `register` stage adds what was registered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The gates report's verdict as a word.
VERDICT = {True: "PASSED", False: "FAILED"}
GATES_SECTION = "Quality gates"
HEADLINE_SECTION = "Headline (test split)"


def headline(
    ev: Mapping[str, Any], replay: Mapping[str, Any], gates: Mapping[str, Any], baseline: Mapping[str, Any] | None
) -> dict[str, float]:
    """The numbers that decide whether the model ships (metric names without the `headline/` prefix)."""
    ov = replay["overall"]
    out = {
        "gates_passed": float(bool(gates["passed"])),
        "termination_recall": ov.get("termination_recall"),
        "false_termination_rate": ov.get("false_termination_rate"),
        "early_terminations": ov.get("early_terminations"),
        "self_harm_ended": replay.get("self_harm_ended"),
        "macro_f1": ev.get("macro_f1"),
    }
    base = None if baseline is None else baseline.get("macro_f1")
    if base is not None and ev.get("macro_f1") is not None:
        out["macro_f1_gain_over_baseline"] = float(ev["macro_f1"]) - float(base)
    return {k: float(v) for k, v in out.items() if v is not None}


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    return str(int(value)) if isinstance(value, float) else str(value)


def verdict_markdown(gates: Mapping[str, Any]) -> str:
    """The gate verdict: one line a reviewer cannot miss, then every gate with its value and limit."""
    passed, failed = bool(gates["passed"]), list(gates.get("failed") or [])
    line = f"**{VERDICT[passed]}**" + (f": {', '.join(failed)}" if failed else ": every gate")
    if not passed:
        line += (
            " (enforced: the stage failed)"
            if gates.get("enforced")
            else " (not enforced: the pipeline went on; `champion` is not moved)"
        )
    rows = ["| gate | value | required | result |", "|---|---|---|---|"]
    for name, g in (gates.get("gates") or {}).items():
        result = "skipped" if g.get("skipped") else ("ok" if g.get("passed") else "**FAILED**")
        note = f" ({g['note']})" if g.get("note") else ""
        rows.append(f"| {name} | {_fmt(g.get('value'))} | {g.get('op', '')} {_fmt(g.get('limit'))} | {result}{note} |")
    return line + "\n\n" + "\n".join(rows)


def headline_markdown(ev: Mapping[str, Any], replay: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> str:
    """The headline numbers with their counts, as a table."""
    ov = replay["overall"]
    base = None if baseline is None else baseline.get("macro_f1")
    rows = [
        "| measure | value |",
        "|---|---|",
        f"| termination recall (should-end chats ended) | {_fmt(ov.get('termination_recall'))} "
        f"({ov.get('terminated')} of {ov.get('should_end')}) |",
        f"| false-termination rate (never-end chats ended) | {_fmt(ov.get('false_termination_rate'))} "
        f"({ov.get('false_terminations')} of {ov.get('never_end')}) |",
        f"| early ends / self-harm chats ended | {_fmt(ov.get('early_terminations'))} / "
        f"{_fmt(replay.get('self_harm_ended'))} |",
        f"| turn-level macro-F1 (TF-IDF baseline) | {_fmt(ev.get('macro_f1'))} ({_fmt(base)}) |",
    ]
    more = "Every metric is logged too (`test.*`, `replay.*`, `baseline.*`, ...); the files are under `metrics/`."
    return "\n".join(rows) + "\n\n" + more


def log_summary(
    ev: Mapping[str, Any], replay: Mapping[str, Any], gates: Mapping[str, Any], baseline: Mapping[str, Any] | None
) -> None:
    """Headline metrics and the description's gate and headline sections, on the active MLflow run."""
    from pipeline.common import tracking

    tracking.log_headline(headline(ev, replay, gates, baseline))
    tracking.set_note_section(GATES_SECTION, verdict_markdown(gates))
    tracking.set_note_section(HEADLINE_SECTION, headline_markdown(ev, replay, baseline))
