"""The bench: the roofline (the model's dense work counted from its graph, and the floor it implies), and the
fusions the bundle skips timed beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.export.roofline import ModelWork, describe, gemm_peak_gops, int8_floor_ms, model_work, roofline
from serving.bundle import MODEL_FILES


def test_model_work_counts_every_dense_layer_of_the_tiny_bert(bundle: str) -> None:
    # tiny BERT (pipeline/modeling.py): hidden 32, intermediate 64, 2 layers.
    # Per layer and token: Q, K, V, output 4 x 32x32, FFN 32x64 + 64x32.
    work = model_work(Path(bundle) / MODEL_FILES["fp32"])
    assert work.dense_macs_per_token == 2 * (4 * 32 * 32 + 2 * 32 * 64)
    assert work.attention_layers == 2
    assert work.hidden == 32
    dense, attn = work.macs(10)
    assert dense == 10 * work.dense_macs_per_token
    assert attn == 2 * 2 * 10 * 10 * 32  # Q·Kᵀ and probs·V per layer


def test_floor_is_work_over_peak() -> None:
    work = ModelWork(dense_macs_per_token=1_000_000, attention_layers=0, hidden=0)
    # 64 tokens x 1e6 MACs x 2 ops = 128 MOP at 128 GOP/s: exactly 1 ms
    assert int8_floor_ms(work, {"int8": 128.0, "fp32": 1.0}, 64) == pytest.approx(1.0)
    attn_only = ModelWork(dense_macs_per_token=0, attention_layers=1, hidden=500)
    # 2 x 1 x 100 x 100 x 500 MACs = 1e7, x 2 ops at 20 GFLOP/s: 1 ms
    assert int8_floor_ms(attn_only, {"int8": 1.0, "fp32": 20.0}, 100) == pytest.approx(1.0)


def test_gemm_peaks_are_measured() -> None:
    peaks = gemm_peak_gops(n=128, repeats=2)
    assert set(peaks) == {"fp32", "int8"}
    assert all(v > 0 for v in peaks.values())


def test_roofline_report_shape(bundle: str) -> None:
    r = roofline(Path(bundle) / MODEL_FILES["fp32"], {"16": 16, "64": 64}, {"16": 1.0, "64": 2.0})
    assert set(r["int8_floor_ms"]) == {"16", "64"}
    assert r["int8_floor_ms"]["64"] > r["int8_floor_ms"]["16"] > 0
    assert r["floor_share_of_p50"]["64"] == pytest.approx(r["int8_floor_ms"]["64"] / 2.0, abs=1e-3)
    assert r["int8_gops_needed_for_5ms_at_64"] > 0
    assert any("64 tok" in line for line in describe(r))


def test_best_peaks_takes_the_fastest_sample_per_kernel() -> None:
    from pipeline.export.roofline import best_peaks

    assert best_peaks([{"fp32": 50.0, "int8": 220.0}, {"fp32": 60.0, "int8": 140.0}]) == {"fp32": 60.0, "int8": 220.0}


def test_bench_times_the_fusions_the_bundle_skips_beside_it(bundle: str, capsys) -> None:
    from serving.bench import print_table, run_bench

    result = run_bench(bundle, models=("int8",), token_targets=(16,), iterations=3, warmup=1, batch_rounds=1,
                       cold_start_runs=0)  # fmt: skip
    af = result["engines"]["onnx_int8"]["latency_all_fusions"]
    assert af["skipped_by_bundle"] == ["SkipLayerNormFusion"]
    assert af["16"]["n"] == 3 and af["16"]["p50_ms"] > 0
    print_table(result)
    assert "with the fusions its bundle skips (SkipLayerNormFusion)" in capsys.readouterr().out


def test_interleaved_latency_alternates_blocks_and_gives_each_call_its_own_index() -> None:
    from serving.bench import interleaved_latency

    log: list[tuple[str, int]] = []
    out = interleaved_latency({"a": lambda i: log.append(("a", i)), "b": lambda i: log.append(("b", i))}, 6, 2, 3)
    timed = log[4:]  # after 2 warm-up calls each
    assert [name for name, _ in timed] == ["a", "a", "b", "b", "b", "b", "a", "a", "a", "a", "b", "b"]
    assert sorted(i for name, i in timed if name == "a") == [2, 3, 4, 5, 6, 7]
    assert out["a"]["n"] == out["b"]["n"] == 6
