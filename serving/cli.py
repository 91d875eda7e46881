"""`python -m serving score|batch|serve|bench|inspect`.

`score` is the offline contract (DESIGN.md): one output line per non-blank input line, in order. An input
line is a conversation as HTTP takes it: `{"id"?, "turns": [{"role", "text"}]}` or `{"id"?, "messages":
[{"role", "content"}]}` (serving/messages.py: the same rules, skips and notes); a line without an id is named
`line-<n>`, its line number in the input file. An output line is what /v1/assess answers: `{"id", "decision",
"end_turn", "reason", "evidence", "degraded", "turns": [{"index", "role", "action", "reason", "evidence",
"scores", "degraded", "error"}], "notes"}`. A line that is not a valid conversation is reported on stderr as
`file:line: field: reason` and written as a `continue`/`degraded` line with an `error` object, so every input
line is accounted for and no caller can read a failure as an `end`. `--strict` makes such lines fail the run
(exit 1).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from serving.bundle import BundleError, gates_summary, read_manifest, verify_files
from serving.decision import Decision, TurnResult
from serving.messages import ScoringRecord, error_id, read_scoring_jsonl, with_sent_roles
from serving.policy import CONTINUE, END, R_DEGRADED
from serving.progress import Bar, Steps
from serving.schema import LineProblem, dumps_json

log = logging.getLogger("serving")


def error_record(problem: LineProblem) -> dict[str, Any]:
    """The output line for an input line that is not a valid conversation: a decision's shape, `continue`."""
    return {
        "id": error_id(problem.raw, problem.line),
        "decision": CONTINUE,
        "end_turn": None,
        "reason": R_DEGRADED,
        "evidence": [],
        "degraded": True,
        "turns": [],
        "notes": [],
        "error": {"file": problem.path, "line": problem.line, "field": problem.field, "reason": problem.reason},
    }


def failed_decisions(records: list[ScoringRecord], error: str) -> list[Decision]:
    """What the scorer answers for conversations it could not score: continue, every turn degraded."""
    return [
        Decision.from_turns(r.id, [TurnResult.failed(i, t.role, error[:500]) for i, t in enumerate(r.turns)])
        for r in records
    ]


def _count_lines(src: Path) -> int:
    """Non-blank lines of the input: the progress bar's total (each becomes one output line)."""
    with src.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def score_records(guard: Any, records: Sequence[ScoringRecord]) -> list[dict[str, Any]]:
    """The output lines of valid conversations, scored in one call: what `score` and `batch` both write, so
    the two commands answer alike by construction (a scorer failure answers every one continue/degraded)."""
    try:
        decisions = guard.assess_many([(r.id, r.pairs) for r in records])
    except Exception as exc:  # noqa: BLE001 - the scorer failed: every line still gets a continue
        log.exception("scoring %d conversations failed; writing them as continue/degraded", len(records))
        decisions = failed_decisions(list(records), f"{type(exc).__name__}: {exc}")
    return [
        with_sent_roles(d.to_dict(), [t.sent_role for t in r.turns], r.notes)
        for r, d in zip(records, decisions, strict=True)
    ]


def _flush_pending(
    guard: Any, pending: list[ScoringRecord | LineProblem], out: TextIO, counts: dict[str, int], bar: Bar | None
) -> None:
    """Score the pending conversations in one call and write every pending line's record, in input order."""
    answers = iter(score_records(guard, [p for p in pending if isinstance(p, ScoringRecord)]))
    for item in pending:
        if isinstance(item, LineProblem):
            line = error_record(item)
            counts["invalid"] += 1
        else:
            line = next(answers)
            counts["scored"] += 1
            counts["ended"] += line["decision"] == END
            counts["degraded"] += bool(line["degraded"])
            counts["named"] += item.id_generated
        out.write(dumps_json(line) + "\n")
    if bar is not None:
        bar.update(len(pending))
    pending.clear()


def cmd_score(args: argparse.Namespace) -> int:
    from serving.guard import Guard

    guard = Guard.load(
        args.bundle,
        model=args.model,
        threads=args.threads,
        batch_size=args.batch_size,
        rescore=not args.no_rescore,
    )
    src = Path(args.input)
    if not src.is_file():
        print(f"error: {src}: input file not found", file=sys.stderr)
        return 2
    bar = None if args.no_progress else Bar(_count_lines(src), "scoring", "conv")
    counts = {"lines": 0, "scored": 0, "invalid": 0, "ended": 0, "degraded": 0, "named": 0}
    out: TextIO = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        pending: list[ScoringRecord | LineProblem] = []
        for item in read_scoring_jsonl(src):
            counts["lines"] += 1
            if isinstance(item, LineProblem):
                print(f"invalid: {item}", file=sys.stderr)
            pending.append(item)
            if len(pending) >= args.chunk:
                _flush_pending(guard, pending, out, counts, bar)
        _flush_pending(guard, pending, out, counts, bar)
    finally:
        if bar is not None:
            bar.close()
        if out is not sys.stdout:
            out.close()
    print(
        f"{counts['lines']} lines: {counts['scored']} conversations scored ({counts['ended']} ended, "
        f"{counts['degraded']} with degraded turns, {counts['named']} without an id named line-<n>), "
        f"{counts['invalid']} invalid lines written as continue/degraded error records -> {args.output}",
        file=sys.stderr,
    )
    return 1 if args.strict and counts["invalid"] else 0


def cmd_batch(args: argparse.Namespace) -> int:
    from serving.batch_ray import GuardSettings, score_dataset

    src = Path(args.input)
    if not src.is_file():
        print(f"error: {src}: input file not found", file=sys.stderr)
        return 2
    settings = GuardSettings(model=args.model, threads=args.threads, rescore=not args.no_rescore)
    summary = score_dataset(
        src, args.output, args.bundle, args.workers, args.address, batch_size=args.chunk, settings=settings
    )
    for problem in summary.errors:
        print(f"invalid: {problem}", file=sys.stderr)
    print(
        f"{summary.lines} records in, {summary.written} lines out: {summary.scored} conversations scored "
        f"({summary.ended} ended, {summary.degraded} with degraded turns, {summary.named} without an id named "
        f"line-<n>), {summary.invalid} invalid records written as continue/degraded error records -> {args.output}",
        file=sys.stderr,
    )
    print(
        f"{summary.workers} workers, {summary.seconds:.1f} s: {summary.conversations_per_s:.1f} conversations/s, "
        f"{summary.turns_per_s:.1f} turns/s ({summary.turns} turns)",
        file=sys.stderr,
    )
    return 1 if args.strict and summary.invalid else 0


def cmd_inspect(args: argparse.Namespace) -> int:
    manifest = read_manifest(args.bundle, verify=False)
    try:
        verify_files(args.bundle, manifest)
        integrity = "ok: every file matches its sha256 in bundle.json (pin the digest to protect bundle.json itself)"
    except BundleError as exc:
        integrity = f"FAILED: {exc}"
    d = manifest.to_dict()
    verdict = manifest.gates.verdict if manifest.gates is not None else "unknown"
    if args.json:
        print(json.dumps({**d, "gate_verdict": verdict, "digest": manifest.digest, "integrity": integrity}, indent=2))
        return 0 if integrity.startswith("ok") else 1
    print(f"bundle        {Path(args.bundle).resolve()}")
    print(f"format        {d['format_version']}   created {d['created_at']}")
    print(f"base model    {d['base_model']}")
    print(f"mlflow run    {d['mlflow_run_id']}")
    print(f"data version  {d['data_version']}")
    source = f"   [{manifest.gates.source}]" if manifest.gates is not None and manifest.gates.source else ""
    print(f"gates         {gates_summary(manifest.gates)}{source}")
    print(f"labels        {', '.join(d['labels'])}")
    w = d["window"]
    print(
        f"window        {w['max_turns']} previous turns, {w['max_tokens']} tokens max, "
        f"{w['max_turn_tokens']} per turn, {w['truncation']} truncation"
    )
    print("thresholds    " + "  ".join(f"{k}={v:.3f}" for k, v in d["thresholds"].items()))
    print("temperatures  " + ("  ".join(f"{k}={v:.3f}" for k, v in d["temperatures"].items()) or "(none: T=1)"))
    pol = {k: v for k, v in d["policy"].items() if k != "thresholds"}
    print("policy        " + "  ".join(f"{k}={v}" for k, v in pol.items()))
    if d.get("rescore"):
        r = d["rescore"]
        print(
            f"rescore       by {r['model']} within {r['margin']:.3f} of a threshold (calibrated logit; {r['source']})"
        )
    if d.get("session"):
        print("session       onnxruntime fusions skipped: " + ", ".join(d["session"]["disabled_optimizers"]))
    for name, sha in d["files"].items():
        size = (Path(args.bundle) / name).stat().st_size if (Path(args.bundle) / name).exists() else 0
        print(f"file          {name:<18} {size / 2**20:8.2f} MB  sha256 {sha}")
    for k, v in d["extra"].items():
        print(f"extra.{k:<8} {json.dumps(v)}")
    print(f"digest        {manifest.digest}   (pin it: Guard.load(expected_digest=...), serve.bundle_digest)")
    print(f"integrity     {integrity}")
    return 0 if integrity.startswith("ok") else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from serving.http import Settings, serve

    settings = Settings.load(args.config)
    keys = ("bundle", "host", "port", "model", "threads", "feedback_path")
    overrides = {k: getattr(args, k) for k in keys if getattr(args, k)}
    settings = settings.replace(**overrides)
    serve(settings)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from serving.bench import print_table, run_bench

    result = run_bench(
        args.bundle,
        models=args.models,
        token_targets=args.tokens,
        iterations=args.iterations,
        warmup=args.warmup,
        threads=args.threads,
        cold_start_runs=args.cold_start_runs,
        progress=None if args.quiet else Steps("bench"),
    )
    print_table(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's default in its help, except where there is none to show (None: the help says where the
    value comes from; False: a switch that is off unless given)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        if isinstance(action.default, list):
            return f"{action.help} (default: {' '.join(map(str, action.default))})"
        return super()._get_help_string(action)


def _score_parser(sub: Any) -> None:
    s = sub.add_parser(
        "score",
        help="replay conversations from a JSONL file, one decision line per input line",
        description="Replay each conversation of a JSONL file turn by turn, as if live; one output line per "
        "non-blank input line, in order. Input lines: {id?, turns: [{role, text}]} or {id?, messages: [{role, "
        "content}]}; a line without an id is named line-<n> (its line number). Output lines: what POST "
        "/v1/assess answers.",
        formatter_class=HelpFormatter,
    )
    s.add_argument("--bundle", default="models/bundle", help="the bundle folder (bundle.json and its files)")
    s.add_argument("--input", required=True, help="JSONL file of conversations")
    s.add_argument("--output", required=True, help="JSONL file for the decisions, or - for stdout")
    s.add_argument("--model", default="int8", help="int8 (model.onnx) | fp32 (model.fp32.onnx)")
    s.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    s.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="windows per model call; above 1, int8 scores depend on the batch-mates (dynamic quantisation "
        "scales activations per batch), so 1 scores every turn as a live turn is scored",
    )
    s.add_argument("--chunk", type=int, default=256, help="conversations read and scored per step")
    s.add_argument("--strict", action="store_true", help="exit 1 if any input line was invalid")
    s.add_argument(
        "--no-rescore", action="store_true", help="the model alone: no fp32 re-scoring of turns near a threshold"
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    s.set_defaults(func=cmd_score)


def _batch_parser(sub: Any) -> None:
    s = sub.add_parser(
        "batch",
        help="score a JSONL or Parquet file of conversations on Ray workers, answers as score writes them",
        description="The score command spread over a Ray cluster (pip install -e '.[batch]'): one Guard per "
        "worker, the same answers, one output line per input record in input order. Input: JSONL lines as score "
        "reads them, or a Parquet file with id and turns or messages columns (row n is line n). Prints "
        "conversations/s and turns/s at the end.",
        formatter_class=HelpFormatter,
    )
    s.add_argument("--bundle", default="models/bundle", help="the bundle folder, read here and sent to workers")
    s.add_argument("--input", required=True, help="JSONL or .parquet file of conversations")
    s.add_argument("--output", required=True, help="JSONL file for the decisions")
    s.add_argument("--workers", type=int, default=2, help="Ray actors, one Guard (one CPU) each")
    s.add_argument(
        "--address",
        help="a running Ray cluster (auto, ray://head:10001); default: start a local one of --workers CPUs",
    )
    s.add_argument("--chunk", type=int, default=64, help="conversations per worker call (Ray Data batch_size)")
    s.add_argument("--model", default="int8", help="int8 (model.onnx) | fp32 (model.fp32.onnx)")
    s.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads per worker")
    s.add_argument("--strict", action="store_true", help="exit 1 if any input record was invalid")
    s.add_argument(
        "--no-rescore", action="store_true", help="the model alone: no fp32 re-scoring of turns near a threshold"
    )
    s.set_defaults(func=cmd_batch)


def _serve_parser(sub: Any) -> None:
    v = sub.add_parser(
        "serve",
        help="HTTP service (FastAPI + uvicorn)",
        description="The HTTP service. Settings come from --config; each flag given overrides its setting.",
        formatter_class=HelpFormatter,
    )
    v.add_argument("--config", default="configs/serve.yaml", help="YAML file with a serve: block")
    v.add_argument("--bundle", help="bundle folder (default: serve.bundle of --config, models/bundle)")
    v.add_argument("--host", help="address to listen on (default: serve.host, 127.0.0.1)")
    v.add_argument("--port", type=int, help="port (default: serve.port, 8000)")
    v.add_argument("--model", help="int8 | fp32 (default: serve.model, int8)")
    v.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: serve.threads, 1)")
    v.add_argument(
        "--feedback-path",
        help="JSONL file POST /v1/feedback appends to (default: serve.feedback_path, data/feedback/feedback.jsonl)",
    )
    v.set_defaults(func=cmd_serve)


def _bench_parser(sub: Any) -> None:
    b = sub.add_parser(
        "bench",
        help="per-turn latency, throughput, cold start of the ONNX scorer",
        description="Time the bundle's ONNX models: per-turn latency by window size, batch throughput, fresh "
        "process start. Progress lines go to stderr; the table to stdout.",
        formatter_class=HelpFormatter,
    )
    b.add_argument("--bundle", default="models/bundle", help="the bundle folder")
    b.add_argument("--models", nargs="+", default=["int8", "fp32"], help="which of the bundle's models to time")
    b.add_argument("--tokens", nargs="+", type=int, default=[16, 64, 128], help="window sizes to time (tokens)")
    b.add_argument("--iterations", type=int, default=300, help="timed turns per model and window size")
    b.add_argument("--warmup", type=int, default=20, help="untimed turns before timing")
    b.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    b.add_argument("--cold-start-runs", type=int, default=3, help="fresh processes per model (0: skip)")
    b.add_argument("--json", help="also write the result to this file")
    b.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    b.set_defaults(func=cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m serving", description="escalation-guard scorer runtime", formatter_class=HelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    _score_parser(sub)
    _batch_parser(sub)
    _serve_parser(sub)
    _bench_parser(sub)
    i = sub.add_parser(
        "inspect",
        help="labels, thresholds, policy, gate verdict, hashes and provenance of a bundle",
        description="Show a bundle's manifest and check every file's sha256 (exit 1 if one differs).",
        formatter_class=HelpFormatter,
    )
    i.add_argument("--bundle", default="models/bundle", help="the bundle folder")
    i.add_argument("--json", action="store_true", help="the manifest as JSON, with digest and integrity")
    i.set_defaults(func=cmd_inspect)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BundleError as exc:
        print(f"bundle error: {exc}", file=sys.stderr)
        return 2
