"""Stage `ingest`: every configured source -> data/raw/conversations.jsonl (+ metrics/ingest.json).

Sources come from `configs/data.yaml` `sources:` and are read through their adapter (pipeline/sources/). Ids are
namespaced `<source name>/<id>` so two sources can never collide, `source` is the source's name and
`meta.source_kind` its kind. `weight` mixes sources: 1.0 keeps every record, < 1 keeps a deterministic subset
(by a hash of the id, so the same records survive whatever the order), > 1 adds whole-conversation copies with
new ids (`<id>~<k>`, `meta.oversample_of` = the original id; `prepare` keeps them and `split` keeps them in
their original's split). Lines that are not records (bad JSON, bad UTF-8) are written as `{"_invalid": ...}`
wrappers for `prepare` to quarantine: nothing read is dropped here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from tqdm import tqdm

from pipeline.common.cli import run_stage
from pipeline.common.config import CONFIG_DIR, section
from pipeline.common.jsonl import dumps_line, paused_gc
from pipeline.data.config import IngestConfig
from pipeline.data.sources.base import INVALID_KEY, SourceSpec, adapter, parse_sources
from serving.policy import PolicyConfig

log = logging.getLogger("pipeline.stages.ingest")
#: The params this stage reads (dvc.yaml lists the same): configs/<file>.yaml sections.
PARAMS = {("data", "ingest"): IngestConfig, ("policy", "policy"): PolicyConfig.from_dict}

RAW_PATH = Path("data/raw/conversations.jsonl")
METRICS_PATH = Path("metrics/ingest.json")


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts (for weighting; independent of record order)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def copies_for(name: str, record_id: str, weight: float) -> int:
    """How many times a record is written: 0 or 1 for weight <= 1, floor(w) or floor(w) + 1 above."""
    whole = math.floor(weight)
    return whole + (_unit(name, record_id, "w") < weight - whole)


def namespace(record: dict[str, Any], spec: SourceSpec) -> dict[str, Any]:
    """Prefix the id with the source name, set `source`, record the kind; malformed fields are left for prepare."""
    rid = record.get("id")
    if isinstance(rid, int) and not isinstance(rid, bool):
        rid = str(rid)
    if isinstance(rid, str) and rid.strip():
        record["id"] = f"{spec.name}/{rid}"
    original_source = record.get("source")
    record["source"] = spec.name
    meta = record.get("meta")
    if meta is None:
        meta = record["meta"] = {}
    if isinstance(meta, dict):
        meta["source_kind"] = spec.kind
        if original_source not in (None, spec.name, spec.kind):
            meta["original_source"] = original_source
    return record


def load_policy(profile: str | None, config_dir: Path) -> PolicyConfig:
    """The policy the synthetic generator labels gold ends with (configs/policy.yaml `policy`)."""
    return section(PolicyConfig.from_dict, "policy", "policy", profile, config_dir)


def run(
    out_path: Path = RAW_PATH,
    metrics_path: Path = METRICS_PATH,
    config_dir: Path = CONFIG_DIR,
    profile: str | None = None,
) -> dict[str, Any]:
    """Read all sources, write the raw JSONL and the counts; returns the metrics dict."""
    specs = parse_sources(section(IngestConfig, "data", "ingest", profile, config_dir).sources)
    policy = load_policy(profile, config_dir)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(out_path.suffix + ".tmp")
    metrics: dict[str, Any] = {"sources": {}, "written": 0}
    t0 = time.perf_counter()
    with tmp.open("wb") as fh, paused_gc():
        for spec in specs:
            spec = SourceSpec(spec.name, spec.kind, spec.weight, spec.options, {"policy": policy})
            m = ingest_source(spec, fh)
            metrics["sources"][spec.name] = m
            metrics["written"] += m["written"]
    tmp.replace(out_path)
    metrics["seconds"] = round(time.perf_counter() - t0, 3)
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(
        f"ingest: wrote {metrics['written']} records to {out_path} "
        + ", ".join(f"{k}={v['written']}" for k, v in metrics["sources"].items())
    )
    return metrics


def ingest_source(spec: SourceSpec, fh: BinaryIO) -> dict[str, Any]:
    """Write one source's records (namespaced, weighted) and its invalid-line wrappers; returns its counts."""
    m = {"kind": spec.kind, "weight": spec.weight, "read": 0, "invalid": 0, "subsampled_out": 0}
    m.update(oversampled_copies=0, written=0)
    total = spec.options.get("n_conversations") if spec.kind == "synthetic" else None
    records = adapter(spec.kind)(spec)
    for record in tqdm(records, desc=f"ingest {spec.name}", total=total, unit="conv", mininterval=2, disable=None):
        m["read"] += 1
        if isinstance(record, dict) and INVALID_KEY in record:
            m["invalid"] += 1
            record[INVALID_KEY]["source"] = spec.name
            fh.write(dumps_line(record))
            m["written"] += 1
            continue
        record = namespace(record, spec)
        rid = str(record.get("id"))
        n = 1 if spec.weight == 1.0 else copies_for(spec.name, rid, spec.weight)
        if n == 0:
            m["subsampled_out"] += 1
            continue
        fh.write(dumps_line(record))
        for k in range(1, n):
            copy = json.loads(json.dumps(record))
            copy["id"] = f"{rid}~{k}"
            if isinstance(copy.get("meta"), dict):
                copy["meta"]["oversample_of"] = rid
            fh.write(dumps_line(copy))
        m["written"] += n
        m["oversampled_copies"] += n - 1
    if m["read"] == 0:
        log.warning("source %r (%s) yielded no records", spec.name, spec.kind)
    log.info("source %s (%s): %s", spec.name, spec.kind, {k: v for k, v in m.items() if k not in ("kind", "weight")})
    return m


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RAW_PATH)
    ap.add_argument("--metrics", type=Path, default=METRICS_PATH)
    ap.add_argument("--config-dir", type=Path, default=CONFIG_DIR)
    ap.add_argument("--profile", default=None)
    args = ap.parse_args(argv)
    run(args.out, args.metrics, args.config_dir, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
