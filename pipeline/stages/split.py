"""Stage `split`: data/prepared/conversations.jsonl -> data/splits/{train,valid,test}.parquet + the data report.

By conversation, never by turn. Units that must stay in one split are joined first (union-find): copies made by
oversampling and their original, rows of one ConvAbuse `conv_id` (except ids mangled into scientific notation,
which merge unrelated conversations), members of one near-duplicate cluster
(`meta.near_dup_cluster` from prepare). Then:
- synthetic records (`meta.template_group`) with `split.template_disjoint`: by whole template group
  (`split.template_groups`, default 0-5 train, 6-7 valid, 8-9 test), so test templates are never seen in train;
  with `template_disjoint: false` they are split like any other source (a template-*sharing* split, for
  measuring the gap);
- ConvAbuse with `split.convabuse: original`: train = the authors' train split; valid and test = two halves of
  the authors' valid split by `conv_id` (seeded); with `random` it is split like any other source;
- everything else: stratified by category, random (seeded) at the unit level, to `split.fractions`.
When a unit spans splits (e.g. a ConvAbuse `conv_id` in the authors' train and valid), the held-out side wins:
the unit goes to the most held-out split among its members (test > valid > train) and members fixed to train are
dropped (counted as `dropped_for_leakage`), members fixed to valid move to test.

Then a leakage check that fails the stage (exit 1): no conversation id, no exact content hash, no near-duplicate
(MinHash, `prepare.near_dup_threshold`) and (when template-disjoint) no template family shared between train
and valid/test; ids and content hashes also not shared between valid and test.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.common.cli import run_stage
from pipeline.common.config import CONFIG_DIR, ConfigError, active_profile, section
from pipeline.common.jsonl import loads, paused_gc
from pipeline.data.config import PartitionParams, PrepareConfig, SplitConfig
from pipeline.data.partition import LeakageError, assign, drop_train_near_copies, leakage_check, to_conversation
from pipeline.data.report import write_report
from pipeline.data.split_files import SPLITS, split_path, write_split

log = logging.getLogger("pipeline.stages.split")

PREPARED_PATH = Path("data/prepared/conversations.jsonl")
SPLITS_DIR = Path("data/splits")
REPORT_PATH = Path("metrics/data_report.json")
PLOT_PATH = Path("plots/data_report.png")
CSV_PATH = Path("plots/data/split_counts.csv")
#: The params this stage reads (dvc.yaml lists the same): configs/<file>.yaml sections.
PARAMS = {("data", "split"): SplitConfig, ("data", "prepare"): PrepareConfig}


def split_params(profile: str | None, config_dir: Path) -> PartitionParams:
    return PartitionParams(
        split=section(SplitConfig, "data", "split", profile, config_dir),
        prepare=section(PrepareConfig, "data", "prepare", profile, config_dir),
    )


@paused_gc()  # the cyclic GC is paused for the bulk load: see pipeline/jsonl.py
def run(
    prepared_path: Path = PREPARED_PATH,
    splits_dir: Path = SPLITS_DIR,
    report_path: Path = REPORT_PATH,
    plot_path: Path | None = PLOT_PATH,
    csv_path: Path = CSV_PATH,
    config_dir: Path = CONFIG_DIR,
    profile: str | None = None,
) -> dict[str, Any]:
    """Run the stage (see the module doc)."""
    params = split_params(profile, config_dir)
    if not prepared_path.exists():
        raise ConfigError(f"{prepared_path} not found (run `python -m pipeline.stages.prepare` first)")
    t0 = time.perf_counter()
    with prepared_path.open("rb") as fh:
        records = [loads(line) for line in fh if line.strip()]
    names, stats = assign(records, params)
    extra_drops = drop_train_near_copies(records, names, params)
    stats["dropped_for_leakage"] += extra_drops
    stats["dropped_near_copies_found_by_split"] = extra_drops
    splits: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for rec, name in zip(records, names, strict=True):
        if name is not None:
            splits[name].append(rec)
    leakage = leakage_check(splits, params)
    for name in SPLITS:
        if not splits[name]:
            log.warning("split %s is empty", name)
    report = write_report(
        splits,
        report_path,
        plot_path,
        csv_path,
        extra={
            "profile": profile or active_profile(Path(config_dir)),
            "read": len(records),
            **stats,
            "leakage": leakage,
            "template_disjoint": params.split.template_disjoint,
            "template_groups": params.split.template_groups if params.split.template_disjoint else None,
        },
    )
    if not leakage["passed"]:
        raise LeakageError("; ".join(leakage["problems"]))
    for name in SPLITS:
        write_split([to_conversation(r) for r in splits[name]], split_path(splits_dir, name))
    counts = {s: len(v) for s, v in splits.items()}
    assert sum(counts.values()) + stats["dropped_for_leakage"] == len(records), "split lost records"
    print(
        f"split: {len(records)} conversations -> "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f" (dropped for leakage {stats['dropped_for_leakage']}); leakage check passed"
        f" in {time.perf_counter() - t0:.1f}s"
    )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", type=Path, default=PREPARED_PATH)
    ap.add_argument("--splits-dir", type=Path, default=SPLITS_DIR)
    ap.add_argument("--report", type=Path, default=REPORT_PATH)
    ap.add_argument("--plot", type=Path, default=PLOT_PATH)
    ap.add_argument("--csv", type=Path, default=CSV_PATH)
    ap.add_argument("--config-dir", type=Path, default=CONFIG_DIR)
    ap.add_argument("--profile", default=None)
    args = ap.parse_args(argv)
    try:
        run(args.prepared, args.splits_dir, args.report, args.plot, args.csv, args.config_dir, args.profile)
    except LeakageError as exc:
        print(f"leakage check failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
