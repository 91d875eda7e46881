"""Throughput of the data stages: `python -m experiments.bench_data --n 100000`.

Runs ingest + prepare + split on `n` synthetic conversations in a temporary folder (the repo's configs with the
source replaced), and prints conversations per second per stage and in total. A command, not a test: timings
depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from pipeline.common.config import CONFIG_DIR, load_config
from pipeline.stages import ingest, prepare, split


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--keep", type=Path, default=None, help="copy the outputs here instead of deleting them")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG (matplotlib) in split")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = Path(tmp)
        cfg = root / "configs"
        shutil.copytree(CONFIG_DIR, cfg)
        data = load_config("data", "default", CONFIG_DIR)
        data["ingest"] = {
            "sources": [{"name": "synthetic", "kind": "synthetic", "weight": 1.0, "n_conversations": args.n, "seed": args.seed}]
        }
        (cfg / "data.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
        (cfg / "profile.yaml").write_text("profile: default\n", encoding="utf-8")
        times: dict[str, float] = {}
        t = time.perf_counter()
        ingest.run(root / "raw.jsonl", root / "ingest.json", cfg, "default")
        times["ingest"] = time.perf_counter() - t
        t = time.perf_counter()
        prep = prepare.run(root / "raw.jsonl", root / "prepared", root / "prepare.json", cfg, "default")
        times["prepare"] = time.perf_counter() - t
        t = time.perf_counter()
        split.run(
            root / "prepared" / "conversations.jsonl",
            root / "splits",
            root / "data_report.json",
            None if args.no_plot else root / "data_report.png",
            root / "split_counts.csv",
            cfg,
            "default",
        )
        times["split"] = time.perf_counter() - t
        total = sum(times.values())
        result = {
            "n": args.n,
            "kept": prep["kept"],
            "seconds": {k: round(v, 2) for k, v in times.items()} | {"total": round(total, 2)},
            "conversations_per_s": {k: round(args.n / v) for k, v in times.items()} | {"total": round(args.n / total)},
        }
        print(json.dumps(result, indent=2))
        if args.keep:
            shutil.copytree(root, args.keep, dirs_exist_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
