"""`python -m serving score|serve|bench|inspect`.

`score` is the offline contract (DESIGN.md): one output line per non-blank input
line, in order. A line that is not a valid conversation is reported on stderr as
`file:line: field: reason` and written as a `continue`/`degraded` line with an
`error` object, so every input line is accounted for and no caller can read a
failure as an `end`. `--strict` makes such lines fail the run (exit 1).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from serving.bundle import BundleError, read_manifest, verify_files
from serving.decision import Decision, TurnResult
from serving.policy import CONTINUE, END, R_DEGRADED
from serving.schema import Conversation, LineProblem, dumps_json, read_jsonl

log = logging.getLogger("serving")


def error_record(problem: LineProblem) -> dict[str, Any]:
    """The output line for an input line that is not a valid conversation."""
    conv_id = None
    try:
        obj = json.loads(problem.raw)
        if isinstance(obj, dict) and isinstance(obj.get("id"), str | int) and not isinstance(obj.get("id"), bool):
            conv_id = str(obj["id"])
    except (ValueError, TypeError, RecursionError):  # malformed, too deep, or an integer too long
        pass
    if isinstance(conv_id, str) and len(conv_id) > 200:
        conv_id = conv_id[:200]
    return {
        "id": conv_id,
        "decision": CONTINUE,
        "end_turn": None,
        "reason": R_DEGRADED,
        "turns": [],
        "degraded": True,
        "error": {"file": problem.path, "line": problem.line, "field": problem.field, "reason": problem.reason},
    }


def failed_decisions(convs: list[Conversation], error: str) -> list[Decision]:
    """What the scorer answers for conversations it could not score: continue, every turn degraded."""
    return [
        Decision.from_turns(c.id, [TurnResult.failed(i, t.role, error[:500]) for i, t in enumerate(c.turns)])
        for c in convs
    ]


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional for the runtime
        return None
    return tqdm(total=total, desc="scoring", unit="conv", file=sys.stderr, dynamic_ncols=True)


def _count_lines(src: Path) -> int:
    """Non-blank lines of the input: the progress bar's total (each becomes one output line)."""
    with src.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def _flush_pending(
    guard: Any, pending: list[Conversation | LineProblem], out: TextIO, counts: dict[str, int], bar: Any
) -> None:
    """Score the pending conversations in one batch and write every pending line's record, in input order."""
    convs = [p for p in pending if isinstance(p, Conversation)]
    try:
        decisions = iter(guard.assess_many([(c.id, c.turns) for c in convs]))
    except Exception as exc:  # noqa: BLE001 - the scorer failed: every line still gets a continue
        log.exception("scoring %d conversations failed; writing them as continue/degraded", len(convs))
        decisions = iter(failed_decisions(convs, f"{type(exc).__name__}: {exc}"))
    for item in pending:
        if isinstance(item, LineProblem):
            record = error_record(item)
            counts["invalid"] += 1
        else:
            record = next(decisions).to_record()
            counts["scored"] += 1
            counts["ended"] += record["decision"] == END
            counts["degraded"] += bool(record["degraded"])
        out.write(dumps_json(record) + "\n")
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
    bar = _progress(_count_lines(src), not args.no_progress)
    counts = {"lines": 0, "scored": 0, "invalid": 0, "ended": 0, "degraded": 0}
    out: TextIO = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        pending: list[Conversation | LineProblem] = []
        for item in read_jsonl(src):
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
        f"{counts['degraded']} with degraded turns), {counts['invalid']} invalid lines written as "
        f"continue/degraded error records -> {args.output}",
        file=sys.stderr,
    )
    return 1 if args.strict and counts["invalid"] else 0


def cmd_inspect(args: argparse.Namespace) -> int:
    manifest = read_manifest(args.bundle, verify=False)
    try:
        verify_files(args.bundle, manifest)
        integrity = "ok: every file matches its sha256 in bundle.json (pin the digest to protect bundle.json itself)"
    except BundleError as exc:
        integrity = f"FAILED: {exc}"
    d = manifest.to_dict()
    if args.json:
        print(json.dumps({**d, "digest": manifest.digest, "integrity": integrity}, indent=2))
        return 0 if integrity.startswith("ok") else 1
    print(f"bundle        {Path(args.bundle).resolve()}")
    print(f"format        {d['format_version']}   created {d['created_at']}")
    print(f"base model    {d['base_model']}")
    print(f"mlflow run    {d['mlflow_run_id']}")
    print(f"data version  {d['data_version']}")
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
    )
    print_table(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m serving", description="escalation-guard scorer runtime")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("score", help="replay conversations from a JSONL file, one decision line per input line")
    s.add_argument("--bundle", default="models/bundle")
    s.add_argument("--input", required=True)
    s.add_argument("--output", required=True, help="JSONL path, or - for stdout")
    s.add_argument("--model", default="int8", help="int8 (default) | fp32")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--batch-size", type=int, default=32, help="windows per model call (across conversations)")
    s.add_argument("--chunk", type=int, default=256, help="conversations read per batch")
    s.add_argument("--strict", action="store_true", help="exit 1 if any input line was invalid")
    s.add_argument(
        "--no-rescore", action="store_true", help="the model alone: no fp32 re-scoring of turns near a threshold"
    )
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_score)

    v = sub.add_parser("serve", help="HTTP service (FastAPI + uvicorn)")
    v.add_argument("--config", default="configs/serve.yaml")
    v.add_argument("--bundle")
    v.add_argument("--host")
    v.add_argument("--port", type=int)
    v.add_argument("--model")
    v.add_argument("--threads", type=int)
    v.add_argument("--feedback-path", help="JSONL file POST /v1/feedback appends to")
    v.set_defaults(func=cmd_serve)

    b = sub.add_parser("bench", help="per-turn latency, throughput, cold start of the ONNX scorer")
    b.add_argument("--bundle", default="models/bundle")
    b.add_argument("--models", nargs="+", default=["int8", "fp32"])
    b.add_argument("--tokens", nargs="+", type=int, default=[16, 64, 128])
    b.add_argument("--iterations", type=int, default=300)
    b.add_argument("--warmup", type=int, default=20)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--cold-start-runs", type=int, default=3)
    b.add_argument("--json", help="also write the result here")
    b.set_defaults(func=cmd_bench)

    i = sub.add_parser("inspect", help="labels, thresholds, policy, hashes and provenance of a bundle")
    i.add_argument("--bundle", default="models/bundle")
    i.add_argument("--json", action="store_true")
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
