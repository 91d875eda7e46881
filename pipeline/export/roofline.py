"""How fast the int8 scorer could be on this machine: a roofline for the bench.

Why: a latency target in milliseconds means different things on different CPUs. On our 2-core cloud Xeon,
onnxruntime's int8 GEMM reaches ~200 GOP/s per core, a fifth of what STACK-NOTES measured on another machine.
The bench therefore measures this CPU's GEMM peak in the same run and divides the model's dense-layer work by
it: the time the matrix multiplies alone need, even at peak. A target below that floor cannot be met by any
int8 build of this model on this machine; a p50 far above it means overhead worth chasing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def _gemm_model(op: str, a_type: int, b_type: int, y_type: int) -> bytes:
    from onnx import helper

    g = helper.make_graph(
        [helper.make_node(op, ["A", "B"], ["Y"])],
        "gemm",
        [
            helper.make_tensor_value_info("A", a_type, ["M", "K"]),
            helper.make_tensor_value_info("B", b_type, ["K", "N"]),
        ],
        [helper.make_tensor_value_info("Y", y_type, ["M", "N"])],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def gemm_peak_gops(n: int = 1024, repeats: int = 10, threads: int = 1) -> dict[str, float]:
    """Best-of-`repeats` throughput of one n×n×n GEMM in onnxruntime: fp32 MatMul and int8 MatMulInteger
    (uint8 activations × int8 weights, the kernels our dynamically quantised model runs), in G(FL)OP/s."""
    import onnxruntime as ort
    from onnx import TensorProto as T

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    rng = np.random.default_rng(0)
    cases = {
        "fp32": (
            _gemm_model("MatMul", T.FLOAT, T.FLOAT, T.FLOAT),
            rng.standard_normal((n, n), dtype=np.float32),
            rng.standard_normal((n, n), dtype=np.float32),
        ),
        "int8": (
            _gemm_model("MatMulInteger", T.UINT8, T.INT8, T.INT32),
            rng.integers(0, 256, (n, n), dtype=np.uint8),
            rng.integers(-127, 128, (n, n), dtype=np.int8),
        ),
    }
    out = {}
    for name, (model, a, b) in cases.items():
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        feeds = {"A": a, "B": b}
        for _ in range(2):
            sess.run(None, feeds)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            best = min(best, time.perf_counter() - t0)
        out[name] = round(2 * n**3 / best / 1e9, 1)
    return out


@dataclass(frozen=True)
class ModelWork:
    """Multiply-accumulates of one forward pass, split by where they run."""

    #: per token: the dense layers (weights are initializers), int8 in the quantised model
    dense_macs_per_token: int
    #: per layer, the attention score and context products scale as tokens² × hidden (fp32 in our int8 model)
    attention_layers: int
    hidden: int

    def macs(self, tokens: int) -> tuple[int, int]:
        """(dense MACs, attention MACs) for a window of `tokens`."""
        return self.dense_macs_per_token * tokens, 2 * self.attention_layers * tokens * tokens * self.hidden


def model_work(fp32_onnx: str | Path) -> ModelWork:
    """Count the dense work in the fp32 graph: every MatMul whose second input is a 2-D weight initializer.

    Why the fp32 graph: its MatMuls are plain ONNX ops with their weights, before quantisation renames them.
    The pooler and classifier (Gemm, on the [CLS] vector only) are negligible and not counted.
    """
    import onnx

    m = onnx.load(str(fp32_onnx), load_external_data=False)
    shapes = {t.name: tuple(t.dims) for t in m.graph.initializer}
    dense, layers, hidden = 0, 0, 0
    for node in m.graph.node:
        if node.op_type != "MatMul":
            continue
        w = shapes.get(node.input[1])
        if w is not None and len(w) == 2:
            dense += int(w[0]) * int(w[1])
            hidden = max(hidden, int(w[0]) if "attention/self/query" in node.name else hidden)
        elif "attention/self/MatMul" in node.name and not node.name.endswith("MatMul_1"):
            layers += 1  # Q·Kᵀ (its partner MatMul_1, probs·V, has the same size)
    if hidden == 0:  # graphs without BERT node names: the widest square weight is the hidden size
        squares = [w[0] for w in shapes.values() if len(w) == 2 and w[0] == w[1]]
        hidden = int(max(squares)) if squares else 0
    return ModelWork(dense_macs_per_token=dense, attention_layers=layers, hidden=hidden)


def int8_floor_ms(work: ModelWork, peaks: Mapping[str, float], tokens: int) -> float:
    """Milliseconds the int8 model's matrix multiplies need at this machine's measured peaks, nothing else."""
    dense, attn = work.macs(tokens)
    return 1e3 * (2 * dense / (peaks["int8"] * 1e9) + 2 * attn / (peaks["fp32"] * 1e9))


def best_peaks(samples: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The fastest each GEMM ran over several measurements. Why: this shared host's speed drifts by up to
    40 % within minutes; the best it showed gives the lowest floor, so a target above it is safely unreachable."""
    return {k: max(s[k] for s in samples) for k in samples[0]}


def roofline(
    fp32_onnx: str | Path,
    window_tokens: Mapping[str, int],
    int8_p50_ms: Mapping[str, float] | None = None,
    peak_samples: Sequence[Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """GEMM peaks of this CPU (1 thread), the model's work, and the int8 floor per benchmarked window size.

    `window_tokens` maps a bench target ("64") to the window's real length; `int8_p50_ms` (optional) adds the
    share of the measured p50 that the floor explains, and the int8 peak a 5 ms p50 would need.
    `peak_samples`: GEMM peaks measured earlier in the run (e.g. before the latency runs); one more is taken now
    and the best of all is used.
    """
    samples = [*(peak_samples or []), gemm_peak_gops()]
    peaks = best_peaks(samples)
    work = model_work(fp32_onnx)
    out: dict[str, Any] = {
        "gemm_peak_gops_1thread": peaks,
        "gemm_peak_samples": samples,
        "dense_macs_per_token": work.dense_macs_per_token,
        "int8_floor_ms": {},
    }
    for target, tokens in window_tokens.items():
        floor = int8_floor_ms(work, peaks, int(tokens))
        out["int8_floor_ms"][target] = round(floor, 4)
        if int8_p50_ms and target in int8_p50_ms:
            out.setdefault("floor_share_of_p50", {})[target] = round(floor / int8_p50_ms[target], 3)
    if "64" in window_tokens:
        dense, attn = work.macs(int(window_tokens["64"]))
        budget_s = 5e-3 - 2 * attn / (peaks["fp32"] * 1e9)
        out["int8_gops_needed_for_5ms_at_64"] = round(2 * dense / budget_s / 1e9, 1) if budget_s > 0 else None
    log.info("roofline: %s", out)
    return out


def describe(r: Mapping[str, Any], targets: Sequence[str] = ("64",)) -> list[str]:
    """Lines for the bench's printout."""
    peaks = r["gemm_peak_gops_1thread"]
    lines = [f"this CPU, 1 thread: fp32 GEMM {peaks['fp32']:.0f} GFLOP/s, int8 GEMM {peaks['int8']:.0f} GOP/s"]
    for t in targets:
        if t in r["int8_floor_ms"]:
            share = r.get("floor_share_of_p50", {}).get(t)
            lines.append(
                f"~{t} tok: the int8 model's matrix multiplies alone need >= {r['int8_floor_ms'][t]:.1f} ms here"
                + (f" ({share:.0%} of its p50)" if share else "")
            )
    if r.get("int8_gops_needed_for_5ms_at_64"):
        lines.append(
            f"a 5 ms p50 at ~64 tok would need an int8 GEMM peak >= {r['int8_gops_needed_for_5ms_at_64']:.0f} GOP/s"
        )
    return lines
