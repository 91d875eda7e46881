"""Behavioural probes: hand-written turns, each group with the outcome the shipped scorer should give; and the
contrast suite (data/probes/contrast.yaml: safe look-alikes beside their unsafe twins), turn-level F1, FPR on the
safe twins and ROC-AUC of the harmful_request and end_request heads at the bundle's thresholds.

Why: the template-disjoint test still shares the synthetic generator's habits, so a shortcut the generator
teaches (a turn addressed to the assistant read as abuse) can hide inside a good test score. Probes written
apart from the generator and named by behaviour (after detoxify's behavioural tests) show it directly. Each
turn is scored by the bundle (`Guard`, what production runs), alone or after the group's `context` turns (what
the conversation said before it: a user who accepts a refusal must not inherit the harmful requests before
it), and compared with the bundle's policy thresholds: a probe passes when every `flags` label reaches its
threshold and every `not` label stays below.

    python -m pipeline.stages.probes [--bundle models/bundle] [--probes data/probes/behaviour.yaml]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.common.cli import run_stage
from pipeline.evaluation.transfer import contrast_turn_metrics, guard_scorer, load_contrast
from serving.labels import LABELS_BY_ROLE, ROLES

log = logging.getLogger(__name__)
#: The params this stage reads: none (it scores the bundle as shipped).
PARAMS: dict = {}


class ProbeError(ValueError):
    """The probe file is malformed."""


@dataclass(frozen=True)
class ProbeGroup:
    name: str
    role: str
    texts: tuple[str, ...]
    flags: tuple[str, ...] = ()
    not_flags: tuple[str, ...] = ()
    why: str = ""
    #: Turns (role, text) before each probe; the probe is the turn scored after them.
    context: tuple[tuple[str, str], ...] = ()

    def conversation(self, text: str) -> list[dict[str, str]]:
        return [*({"role": r, "text": t} for r, t in self.context), {"role": self.role, "text": text}]


def _context(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    """`context`: a list of {role, text} turns."""
    if raw is None:
        return ()
    ok = isinstance(raw, list) and all(
        isinstance(t, Mapping) and t.get("role") in ROLES and isinstance(t.get("text"), str) for t in raw
    )
    if not ok:
        raise ProbeError(f"{where}: context must be a list of {{role, text}} turns with a role in {list(ROLES)}")
    return tuple((t["role"], t["text"]) for t in raw)


def load_probes(path: str | Path) -> list[ProbeGroup]:
    """Parse and check the probe file: known roles, labels the role can carry, non-empty texts."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ProbeError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("groups") or [], list):
        raise ProbeError(f"{path}: expected a mapping with a list under `groups`")
    groups = []
    for i, g in enumerate(doc.get("groups") or []):
        if not isinstance(g, Mapping):
            raise ProbeError(f"{path}: group {i} must be a mapping, got {type(g).__name__}")
        where = f"{path}: group {i} ({g.get('name', '?')})"
        role = g.get("role")
        if role not in LABELS_BY_ROLE:
            raise ProbeError(f"{where}: role must be one of {sorted(LABELS_BY_ROLE)}, got {role!r}")
        expect = g.get("expect") or {}
        flags, not_flags = tuple(expect.get("flags") or ()), tuple(expect.get("not") or ())
        unknown = [x for x in flags + not_flags if x not in LABELS_BY_ROLE[role]]
        if unknown or not (flags or not_flags):
            raise ProbeError(
                f"{where}: expect needs labels of a {role} turn {list(LABELS_BY_ROLE[role])}, got {unknown}"
            )
        texts = tuple(str(t) for t in g.get("texts") or ())
        if not texts or not g.get("name"):
            raise ProbeError(f"{where}: a name and at least one text are required")
        context = _context(g.get("context"), where)
        groups.append(ProbeGroup(str(g["name"]), role, texts, flags, not_flags, str(g.get("why", "")), context))
    if not groups:
        raise ProbeError(f"{path}: no probe groups")
    return groups


def judge(scores: Mapping[str, float], thresholds: Mapping[str, float], group: ProbeGroup) -> list[str]:
    """The expectations one scored turn breaks (empty: it passes)."""
    broken = [f"{k} {scores[k]:.2f} < {thresholds[k]:.2f}" for k in group.flags if scores[k] < thresholds[k]]
    broken += [f"{k} {scores[k]:.2f} >= {thresholds[k]:.2f}" for k in group.not_flags if scores[k] >= thresholds[k]]
    return broken


def run_probes(guard: Any, groups: Sequence[ProbeGroup]) -> dict[str, Any]:
    """Score every probe (after its group's context) with `guard` (a serving.Guard); summarise per group."""
    thresholds = guard.manifest.thresholds
    decisions = guard.assess_many([(f"{g.name}#{i}", g.conversation(t)) for g in groups for i, t in enumerate(g.texts)])
    out: dict[str, Any] = {"thresholds": dict(thresholds), "groups": {}}
    turns = iter(d.turns[-1] for d in decisions)  # the probed turn, in the order they were submitted
    for g in groups:
        failures = []
        for text, turn in zip(g.texts, turns, strict=False):  # takes this group's share of `turns`
            broken = ["not scored: " + str(turn.error)] if turn.scores is None else judge(turn.scores, thresholds, g)
            if broken:
                failures.append({"text": text, "broken": broken})
        n = len(g.texts)
        out["groups"][g.name] = {
            "why": g.why,
            "role": g.role,
            "expect": {"flags": list(g.flags), "not": list(g.not_flags)},
            "context_turns": len(g.context),
            "probes": n,
            "passed": n - len(failures),
            "pass_rate": (n - len(failures)) / n,
            "failures": failures,
        }
    groups_out = out["groups"].values()
    out["pass_rate"] = sum(g["passed"] for g in groups_out) / sum(g["probes"] for g in groups_out)
    return out


def log_to_mlflow(run_id: str, result: Mapping[str, Any], output: Path) -> None:
    """Add the pass rates, the contrast metrics and the probes file to the run that trained the bundle's model."""
    from pipeline.common import tracking

    metrics = {"probes.pass_rate": result["pass_rate"]}
    metrics.update({f"probes.{name}.pass_rate": g["pass_rate"] for name, g in result["groups"].items()})
    for label, c in result.get("contrast", {}).items():
        metrics.update(
            {f"probes.contrast.{label}.{k}": c[k] for k in ("f1", "fpr_safe", "roc_auc") if c[k] is not None}
        )
    tracking.add_to_run(run_id, metrics, output, "probes")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="models/bundle")
    parser.add_argument("--probes", default="data/probes/behaviour.yaml")
    parser.add_argument("--contrast", default="data/probes/contrast.yaml", help="safe/unsafe twin prompts")
    parser.add_argument("--output", default="metrics/probes.json")
    parser.add_argument("--no-mlflow", action="store_true", help="skip MLflow logging (tests)")
    args = parser.parse_args(argv)

    from serving.bundle import BundleError
    from serving.guard import Guard

    try:
        groups = load_probes(args.probes)
        pairs = load_contrast(Path(args.contrast))
        guard = Guard.load(args.bundle, rescore=True)
    except (ProbeError, BundleError, OSError, ValueError) as exc:
        print(f"probes failed: {exc}", file=sys.stderr)
        return 1
    result = run_probes(guard, groups)
    result["contrast"] = contrast_turn_metrics(guard_scorer(guard), pairs, dict(guard.manifest.thresholds))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for name, g in result["groups"].items():
        log.info("%-32s %2d/%2d pass", name, g["passed"], g["probes"])
        for f in g["failures"][:3]:
            log.info("    %r: %s", f["text"][:60], "; ".join(f["broken"]))
    log.info("behavioural probes: %.0f %% pass (written to %s)", 100 * result["pass_rate"], args.output)
    for label, c in result["contrast"].items():
        log.info(
            "contrast %-16s F1 %.3f, safe twins flagged %.1f %%, ROC-AUC %s",
            label,
            c["f1"],
            100 * c["fpr_safe"],
            c["roc_auc"],
        )
    run_id = guard.manifest.mlflow_run_id
    if run_id and not args.no_mlflow:
        log_to_mlflow(run_id, result, Path(args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
