"""Benchmark of the ONNX scorer: what one live decision costs, batch throughput, cold start.

A *decision* is what production pays per turn: tokenise the new turn, assemble
its window from cached context ids, run the model, calibrate, step the policy
(`Guard.observe`). Windows of ~16/64/128 tokens are built from filler text and
the exact window length is reported. No torch here: `pipeline/bench.py` runs the
PyTorch side on the same windows and writes metrics/bench.json.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from serving.bundle import MODEL_FILES, read_manifest
from serving.guard import ConversationState, Guard
from serving.rescore import RescoreConfig
from serving.window import WindowEncoder

log = logging.getLogger(__name__)

FILLER = [
    "please",
    "tell",
    "me",
    "more",
    "about",
    "the",
    "history",
    "of",
    "this",
    "old",
    "city",
    "and",
    "its",
    "famous",
    "bridges",
    "rivers",
    "markets",
    "people",
    "music",
    "food",
    "churches",
    "walls",
    "gates",
    "towers",
    "streets",
    "parks",
    "schools",
]


def text_with_tokens(encoder: WindowEncoder, role: str, n: int) -> str:
    """A turn whose token ids (role prefix included) number exactly `n` where possible."""
    words: list[str] = []
    while len(encoder.tokenize_turn(role, " ".join(words))) < n:
        words.append(FILLER[len(words) % len(FILLER)])
        if len(words) > 4 * n + 8:
            break
    return " ".join(words)


def scenario(encoder: WindowEncoder, target_tokens: int) -> tuple[list[tuple[str, str]], str]:
    """(previous turns, new user turn) whose window is ~`target_tokens` long (special tokens included)."""
    spec = encoder.spec
    body = max(2, min(target_tokens, spec.max_tokens) - 3)
    want_target = body if body <= 24 else min(spec.max_turn_tokens, body // 2)
    want_ctx = body - want_target
    prefix: list[tuple[str, str]] = []
    role = "assistant"
    while want_ctx > 0:
        n = min(spec.max_turn_tokens, want_ctx)
        prefix.insert(0, (role, text_with_tokens(encoder, role, n)))
        want_ctx -= n
        role = "user" if role == "assistant" else "assistant"
    return prefix, text_with_tokens(encoder, "user", want_target)


def window_length(encoder: WindowEncoder, prefix: Sequence[tuple[str, str]], text: str) -> int:
    return len(encoder.encode_conversation([*prefix, ("user", text)])[-1][0])


def summarise_ms(samples_ns: Sequence[int]) -> dict[str, float]:
    a = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 4),
        "p90_ms": round(float(np.percentile(a, 90)), 4),
        "p99_ms": round(float(np.percentile(a, 99)), 4),
        "mean_ms": round(float(a.mean()), 4),
        "n": len(a),
    }


def time_calls(fn: Callable[[int], Any], iterations: int, warmup: int) -> dict[str, float]:
    for i in range(warmup):
        fn(i)
    samples = []
    for i in range(iterations):
        t0 = time.perf_counter_ns()
        fn(warmup + i)
        samples.append(time.perf_counter_ns() - t0)
    return summarise_ms(samples)


def interleaved_latency(
    calls: Mapping[str, Callable[[int], Any]], iterations: int, warmup: int, blocks: int = 10
) -> dict[str, dict[str, float]]:
    """Several engines timed in alternating blocks (A B, B A, ...), so that a minute when the host is slow
    slows all of them: timed one after the other, the int8 / torch ratio at 64 tokens read 4.9x in one run and
    2.9x minutes later, with only torch's p50 moving (25 -> 40 ms). Call `i` of an engine gets index `i`."""
    for fn in calls.values():
        for i in range(warmup):
            fn(i)
    samples: dict[str, list[int]] = {name: [] for name in calls}
    per = max(1, iterations // blocks)
    for b in range(blocks):
        for name in list(calls) if b % 2 == 0 else list(reversed(calls)):
            fn = calls[name]
            for j in range(warmup + b * per, warmup + (b + 1) * per):
                t0 = time.perf_counter_ns()
                fn(j)
                samples[name].append(time.perf_counter_ns() - t0)
    return {name: summarise_ms(s) for name, s in samples.items()}


def prepared_states(
    observe: Callable[[ConversationState, str, str], Any],
    base: ConversationState,
    prefix: Sequence[tuple[str, str]],
    n: int,
) -> list[ConversationState]:
    """`n` copies of the conversation state after `prefix`, made outside any timing."""
    for role, t in prefix:
        observe(base, role, t)
    return [base.copy() for _ in range(n)]


def observe_latency(guard: Guard, prefix: Sequence[tuple[str, str]], text: str, iterations: int, warmup: int) -> dict:
    """Guard.observe of one new user turn after `prefix` (state copies prepared outside the timing)."""
    states = prepared_states(guard.observe, guard.new_conversation(), prefix, iterations + warmup + 1)
    out = time_calls(lambda i: guard.observe(states[i], "user", text), iterations, warmup)
    assert not guard.observe(states[-1], "user", text).degraded
    return out


def batch_throughput(guard: Guard, windows: Sequence, batch_size: int, rounds: int) -> dict[str, float]:
    """Windows per second through the model + calibration, `batch_size` windows per call."""
    batch = list(windows[:batch_size])
    saved = guard.batch_size
    guard.batch_size = batch_size
    try:
        guard.score_windows(batch)
        t0 = time.perf_counter()
        for _ in range(rounds):
            guard.score_windows(batch)
        dt = time.perf_counter() - t0
    finally:
        guard.batch_size = saved
    return {"batch_size": batch_size, "windows_per_s": round(rounds * len(batch) / dt, 1)}


def throughput_windows(encoder: WindowEncoder, target_tokens: int, n: int) -> list[tuple[list[int], list[int]]]:
    """`n` distinct windows of ~target_tokens (filler rotated so no two are identical)."""
    prefix, text = scenario(encoder, target_tokens)
    out = []
    for k in range(n):
        words = text.split()
        rotated = " ".join(words[k % len(words) :] + words[: k % len(words)])
        out.append(encoder.encode_conversation([*prefix, ("user", rotated)])[-1])
    return out


#: Start of every cold-start probe (ONNX here, torch in pipeline/bench.py): the clock and a peak-RSS reader.
COLD_START_PROLOGUE = """
import time
t0 = time.perf_counter()
import json, resource, sys
def peak_rss_mb():
    # VmHWM: this process's own high-water mark. ru_maxrss would carry over the parent's peak across exec.
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

COLD_START_CODE = (
    COLD_START_PROLOGUE
    + """
from serving.guard import Guard
t1 = time.perf_counter()
guard = Guard.load(sys.argv[1], model=sys.argv[2])
t2 = time.perf_counter()
result = guard.observe(guard.new_conversation(), "user", "hello, can you help me plan a trip?")
t3 = time.perf_counter()
assert not result.degraded
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_turn_s": t3 - t2, "ready_s": t3 - t0,
                  "peak_rss_mb": peak_rss_mb(),
                  "torch_loaded": "torch" in sys.modules}))
"""
)


def fresh_process(
    args: Sequence[str],
    code: str,
    runs: int,
    cwd: str | Path | None = None,
) -> dict[str, Any]:
    """Run `code` in `runs` fresh interpreters; median of each field plus spawn-to-exit wall time."""
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start process failed: {proc.stderr.strip()[-500:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["process_wall_s"] = wall
        rows.append(row)
    out: dict[str, Any] = {"runs": runs}
    for key, value in rows[0].items():
        if isinstance(value, bool):
            out[key] = value
        else:
            out[key] = round(statistics.median(r[key] for r in rows), 4)
    return out


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime

    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
    }


def cold_starts(bundle: str | Path, model: str, runs: int) -> dict[str, dict[str, Any]]:
    """Fresh scorer processes: import, load (the files it reads hashed from the bytes it loads), first turn."""
    root = Path(__file__).resolve().parent.parent
    return {"cold_start": fresh_process([str(bundle), model], COLD_START_CODE, runs, cwd=root)}


def _phases(bundle: str | Path, models: Sequence[str], targets: Sequence[int], cold_start_runs: int) -> int:
    """How many progress lines `run_bench` prints: one per timed phase."""
    manifest = read_manifest(bundle, verify=False)
    per_model = 0
    for model in models:
        rs = manifest.rescore
        rescored = rs is not None and MODEL_FILES.get(model, model) != rs.model
        per_model += len(targets) * (1 + bool(manifest.disabled_optimizers) + rescored) + 1 + (cold_start_runs > 0)
    return per_model


def run_bench(
    bundle: str | Path,
    *,
    models: Sequence[str] = ("int8", "fp32"),
    token_targets: Sequence[int] = (16, 64, 128),
    iterations: int = 300,
    warmup: int = 20,
    threads: int = 1,
    batch_size: int = 32,
    batch_rounds: int = 10,
    cold_start_runs: int = 3,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Latency per window size, batch throughput and cold start for each ONNX model of the bundle.

    `progress(line)` is called before each timed phase with `[i/n] what` (the CLI prints it on stderr: the
    default run takes about 90 s on a 2-core CPU)."""
    total, done = _phases(bundle, models, token_targets, cold_start_runs), [0]

    def say(what: str) -> None:
        done[0] += 1
        if progress is not None:
            progress(f"[{done[0]}/{total}] {what}")

    result: dict[str, Any] = {"machine": machine(), "threads": threads, "engines": {}, "windows": {}}
    for model in models:
        # The model alone: re-scoring (serving/rescore.py) is timed apart, on turns it re-scores.
        guard = Guard.load(bundle, model=model, threads=threads, rescore=False)
        engine = _latencies(bundle, model, guard, token_targets, iterations, warmup, threads, say, result["windows"])
        say(f"onnx_{model}: batch throughput, {batch_rounds} rounds of {batch_size} windows")
        wins = throughput_windows(guard.encoder, 64, batch_size)
        engine["throughput"] = batch_throughput(guard, wins, batch_size, batch_rounds)
        engine["size_mb"] = round((Path(bundle) / guard.model.name).stat().st_size / 2**20, 2)
        if cold_start_runs > 0:
            say(f"onnx_{model}: cold start, {cold_start_runs} fresh processes")
            engine.update(cold_starts(bundle, model, cold_start_runs))
        result["engines"][f"onnx_{model}"] = engine
    return result


def _latencies(
    bundle: str | Path,
    model: str,
    guard: Guard,
    token_targets: Sequence[int],
    iterations: int,
    warmup: int,
    threads: int,
    say: Callable[[str], None],
    windows: dict[str, int],
) -> dict[str, Any]:
    """One engine's per-turn latency per window size: as the bundle runs it, with the fusions it skips back on,
    and for a turn re-scored near a threshold (both models)."""
    engine: dict[str, Any] = {"latency": {}}
    # The fusions the bundle skips (bundle.json `session`) are timed back on, beside it: the choice is
    # re-checked on whatever CPU runs the bench.
    skipped = guard.model.disabled_optimizers
    full = Guard.load(bundle, model=model, threads=threads, rescore=False, disabled_optimizers=[]) if skipped else None
    for target in token_targets:
        prefix, text = scenario(guard.encoder, target)
        windows[str(target)] = window_length(guard.encoder, prefix, text)
        say(f"onnx_{model}: latency at ~{target} tokens, {iterations} turns")
        engine["latency"][str(target)] = observe_latency(guard, prefix, text, iterations, warmup)
        if full is not None:
            say(f"onnx_{model}: latency at ~{target} tokens with every fusion on, {iterations} turns")
            engine.setdefault("latency_all_fusions", {"skipped_by_bundle": list(skipped)})
            engine["latency_all_fusions"][str(target)] = observe_latency(full, prefix, text, iterations, warmup)
    rs = guard.manifest.rescore if guard.manifest is not None else None
    if rs is not None and MODEL_FILES.get(model, model) != rs.model:
        # A turn near a threshold pays for both models: force every turn to be one.
        both = Guard.load(bundle, model=model, threads=threads, rescore="eager")
        both.rescore = RescoreConfig(rs.model, 1e9, "bench: every turn re-scored")
        engine["rescore"] = rs.to_dict()
        engine["latency_rescored_turn"] = {}
        for t in token_targets:
            say(f"onnx_{model}: latency of a re-scored turn at ~{t} tokens, {iterations // 3} turns")
            engine["latency_rescored_turn"][str(t)] = observe_latency(
                both, *scenario(both.encoder, t), iterations // 3, warmup
            )
    return engine


def print_table(result: dict[str, Any], baseline: str | None = None) -> None:
    """Latency table (p50 / p99 ms per window size), throughput and cold start; ratios vs `baseline`."""
    engines = result["engines"]
    targets = list(next(iter(engines.values()))["latency"])
    header = f"{'engine':<12}" + "".join(f"{'~' + t + ' tok p50/p99 ms':>24}" for t in targets)
    header += f"{'batch win/s':>13}{'cold RSS MB':>13}{'ready s':>9}"
    print(header)
    for name, e in engines.items():
        row = f"{name:<12}"
        for t in targets:
            lat = e["latency"][t]
            row += f"{lat['p50_ms']:>15.2f} / {lat['p99_ms']:<6.2f}"
        cs = e.get("cold_start", {})
        row += f"{e['throughput']['windows_per_s']:>13.0f}"
        row += f"{cs.get('peak_rss_mb', float('nan')):>13.0f}{cs.get('process_wall_s', float('nan')):>9.2f}"
        print(row)
    print("window tokens: " + ", ".join(f"~{k}: {v}" for k, v in result["windows"].items()))
    for name, e in engines.items():
        if "latency_all_fusions" in e:
            af = e["latency_all_fusions"]
            lat = ", ".join(
                f"~{t} tok {af[t]['p50_ms']:.2f} ({af[t]['p50_ms'] / e['latency'][t]['p50_ms']:.2f}x)" for t in targets
            )
            print(f"{name} with the fusions its bundle skips ({', '.join(af['skipped_by_bundle'])}), p50 ms: {lat}")
        if "latency_rescored_turn" in e:
            lat = ", ".join(f"~{t} tok {v['p50_ms']:.2f}" for t, v in e["latency_rescored_turn"].items())
            print(f"{name}: a turn re-scored by {e['rescore']['model']} (near a threshold), p50 ms: {lat}")
    if baseline and baseline in engines:
        base = engines[baseline]
        for name, e in engines.items():
            if name == baseline:
                continue
            ratios = ", ".join(
                f"~{t} tok {base['latency'][t]['p50_ms'] / e['latency'][t]['p50_ms']:.1f}x" for t in targets
            )
            tp = e["throughput"]["windows_per_s"] / base["throughput"]["windows_per_s"]
            print(f"{name} vs {baseline}: p50 speed-up {ratios}; batch throughput {tp:.1f}x")
