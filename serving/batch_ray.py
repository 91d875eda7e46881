"""`python -m serving batch`: the `score` contract, spread over the workers of a Ray cluster.

Why Ray Data and not Spark: it is pure pip (`ray[data]`, the `batch` extra), with no JVM, no Scala/Py4J
bridge and no cluster manager to stand up for a 2-CPU laptop run; a callable class under `map_batches` with
an `ActorPoolStrategy` is a long-lived Python process that builds one `Guard` (one onnxruntime session,
threads 1, as the CLI) per worker and keeps it for every batch, where Spark's Python UDFs run in worker
processes Spark may recycle, with every row crossing the JVM through Arrow. The same command runs on a local
cluster (`ray.init(num_cpus=workers)`) and on a real one (`--address auto` or `ray://head:10001`).

How it stays identical to `python -m serving score`:
- the driver reads the input with the CLI's own reader (`read_scoring_jsonl`; Parquet rows through the same
  `parse_scoring_record`), so ids, `line-<n>` names and error records are the CLI's;
- workers score with the CLI's own `score_records` (one `Guard.assess_many` per batch, model batch 1, so
  scores never depend on batch-mates or on which worker took a conversation);
- the driver writes one output line per input record, in input order (each row carries its sequence number).

The bundle's files are read by the driver and shipped to the workers through the object store, so a
cluster's nodes need no shared filesystem; each worker's `Guard.load` checks every file's sha256 as usual.
Reading and parsing stay on the driver (cheap next to scoring: ~50 turns/s per core for a whole-window
model); it holds the parsed records and the answers of one input file in memory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.cli import error_record, score_records
from serving.messages import ReadTurn, ScoringRecord, parse_scoring_record, read_scoring_jsonl
from serving.policy import END
from serving.schema import RAW_KEEP_CHARS, LineProblem, SchemaError, dumps_json

log = logging.getLogger("serving.batch")

#: Parquet columns read as a conversation (others, e.g. a split file's category and end_at, are ignored).
PARQUET_COLUMNS = ("id", "turns", "messages")


@dataclass(frozen=True)
class GuardSettings:
    """How every worker loads the bundle: the `score` command's defaults (int8, lazy fp32 re-scoring,
    one onnxruntime thread, each window scored alone)."""

    model: str = "int8"
    threads: int = 1
    rescore: bool = True
    model_batch_size: int = 1


@dataclass
class BatchSummary:
    """What a run did: every input record is counted once (`lines` == `scored` + `invalid` == lines written)."""

    lines: int = 0
    scored: int = 0
    invalid: int = 0
    ended: int = 0
    degraded: int = 0
    named: int = 0
    turns: int = 0
    written: int = 0
    workers: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def conversations_per_s(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0

    @property
    def turns_per_s(self) -> float:
        return self.turns / self.seconds if self.seconds > 0 else 0.0


def read_inputs(path: str | Path) -> Iterator[ScoringRecord | LineProblem]:
    """Every record of a JSONL or Parquet (`.parquet`) file as the CLI reads it: a record or a problem."""
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        yield from _read_parquet(p)
    else:
        yield from read_scoring_jsonl(p)


def _read_parquet(path: Path) -> Iterator[ScoringRecord | LineProblem]:
    """Rows of a Parquet file with `id` and `turns` or `messages` columns, row n (from 1) read as line n.

    Our split files store each turn's `meta` as JSON text; it is decoded so that they can be scored as is."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    columns = [c for c in PARQUET_COLUMNS if c in pf.schema_arrow.names]
    lineno = 0
    for batch in pf.iter_batches(columns=columns, batch_size=1024):
        for row in batch.to_pylist():
            lineno += 1
            obj = {k: v for k, v in row.items() if v is not None}
            try:
                yield parse_scoring_record(_decode_meta(obj), lineno)
            except SchemaError as exc:
                raw = json.dumps(obj, default=str)[:RAW_KEEP_CHARS]
                yield LineProblem(str(path), lineno, exc.field, exc.message, raw)


def _decode_meta(obj: dict[str, Any]) -> dict[str, Any]:
    turns = obj.get("turns")
    if not isinstance(turns, list):
        return obj
    out = []
    for t in turns:
        if isinstance(t, dict) and isinstance(t.get("meta"), str):
            with contextlib.suppress(ValueError):  # left as text: parse_turn names the field
                t = {**t, "meta": json.loads(t["meta"] or "{}")}
        out.append(t)
    return {**obj, "turns": out}


def encode_record(record: ScoringRecord) -> str:
    """A record as one JSON string column: rows of plain text travel through Arrow whatever the turns hold."""
    turns = [[t.role, t.text, t.sent_role, t.note] for t in record.turns]
    return json.dumps({"id": record.id, "turns": turns, "generated": record.id_generated})


def decode_record(text: str) -> ScoringRecord:
    obj = json.loads(text)
    turns = tuple(ReadTurn(role, body, sent, note) for role, body, sent, note in obj["turns"])
    return ScoringRecord(obj["id"], turns, obj["generated"])


class GuardScorer:
    """One Ray Data actor: writes the shipped bundle to a temporary folder, loads one Guard from it (sha256
    checked) and keeps it for every batch the actor is given."""

    def __init__(self, files: dict[str, bytes], settings: GuardSettings) -> None:
        from serving.guard import Guard

        self._dir = Path(tempfile.mkdtemp(prefix="eg-bundle-"))
        for name, data in files.items():
            (self._dir / name).write_bytes(data)
        self.guard = Guard.load(
            self._dir,
            model=settings.model,
            threads=settings.threads,
            batch_size=settings.model_batch_size,
            rescore=settings.rescore,
        )

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        records = [decode_record(str(t)) for t in batch["record"]]
        answers = [dumps_json(a) for a in score_records(self.guard, records)]
        return {"seq": np.asarray(batch["seq"]), "answer": np.asarray(answers, dtype=object)}

    def __del__(self) -> None:
        shutil.rmtree(getattr(self, "_dir", ""), ignore_errors=True)


def bundle_files(bundle: str | Path) -> dict[str, bytes]:
    """The bundle folder's files by name (links followed, as a DVC cache has them); Guard.load checks them."""
    root = Path(bundle)
    if not (root / "bundle.json").is_file():
        from serving.bundle import BundleError

        raise BundleError(f"{root}: no bundle.json")
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


def _start_ray(address: str | None, workers: int, threads: int) -> Any:
    """Join the cluster at `address` (auto, ray://..., host:port), else start a local one of `workers` x `threads` CPUs.
    An already initialised Ray (a test, a notebook) is used as it is."""
    import ray

    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": workers * threads}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kwargs)
    return ray


def _run_workers(
    records: list[tuple[int, ScoringRecord]],
    files: dict[str, bytes],
    settings: GuardSettings,
    workers: int,
    batch_size: int,
) -> dict[int, str]:
    """The answer (JSON text) of every record by sequence number, scored by a pool of `workers` actors."""
    import ray.data
    from ray.data import ActorPoolStrategy

    rows = [{"seq": seq, "record": encode_record(r)} for seq, r in records]
    blocks = max(1, min(len(rows), math.ceil(len(rows) / batch_size)))
    ds = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        GuardScorer,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=workers),
        num_cpus=settings.threads,
        fn_constructor_kwargs={"files": files, "settings": settings},
    )
    return {int(row["seq"]): str(row["answer"]) for row in ds.iter_rows()}


def score_dataset(
    input: str | Path,
    output: str | Path,
    bundle: str | Path,
    workers: int = 2,
    address: str | None = None,
    batch_size: int = 64,
    settings: GuardSettings | None = None,
) -> BatchSummary:
    """Score every conversation of `input` (JSONL, or Parquet) on Ray workers into `output` (JSONL: one
    /v1/assess answer per input record, in input order; an invalid record answered continue/degraded with its
    `error`, as `score` writes it). `batch_size`: conversations per worker call; `workers`: actors, one Guard
    each; `address`: a running cluster (None starts a local one of `workers` CPUs)."""
    if workers < 1 or batch_size < 1:
        raise ValueError(f"workers and batch_size must be >= 1, got {workers} and {batch_size}")
    settings = settings or GuardSettings()
    files = bundle_files(bundle)
    summary = BatchSummary(workers=workers)
    start = time.perf_counter()
    items = list(read_inputs(input))
    summary.lines = len(items)
    records = [(i, it) for i, it in enumerate(items) if isinstance(it, ScoringRecord)]
    summary.errors = [str(it) for it in items if isinstance(it, LineProblem)]
    answers: dict[int, str] = {}
    if records:
        _start_ray(address, workers, settings.threads)
        answers = _run_workers(records, files, settings, workers, batch_size)
    _write_answers(items, answers, Path(output), summary)
    summary.seconds = time.perf_counter() - start
    return summary


def _write_answers(
    items: list[ScoringRecord | LineProblem], answers: dict[int, str], out: Path, summary: BatchSummary
) -> None:
    """One line per input record, in input order, counted into `summary` as `score` counts them."""
    missing = [i for i, it in enumerate(items) if isinstance(it, ScoringRecord) and i not in answers]
    if missing:  # Ray Data retries failed tasks; an answer still missing is a bug, not something to skip
        raise RuntimeError(f"{len(missing)} conversations came back without an answer (first: record {missing[0]})")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for i, item in enumerate(items):
            if isinstance(item, LineProblem):
                fh.write(dumps_json(error_record(item)) + "\n")
                summary.invalid += 1
            else:
                text = answers[i]
                line = json.loads(text)
                summary.scored += 1
                summary.turns += len(item.turns)
                summary.ended += line["decision"] == END
                summary.degraded += bool(line["degraded"])
                summary.named += item.id_generated
                fh.write(text + "\n")
            summary.written += 1
