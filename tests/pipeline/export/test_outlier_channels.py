"""int8 outlier channels (pipeline/outlier_channels.py): the rewritten fp32 graph computes the same logits,
the side paths stay fp32 through quantisation, and channels are chosen by the rule the config describes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from pipeline.data.split_files import read_split
from pipeline.export.outlier_channels import FP32_SUFFIX, outlier_channels, split_outlier_channels, target_matmuls
from pipeline.stages import export
from serving.bundle import read_manifest
from serving.window import WindowEncoder, pad_batch
from tests.serving_fixtures import REPO_ROOT

FFN = [r"intermediate/dense/MatMul$", r"layer\.\d+/output/dense/MatMul$"]


def test_channels_above_ratio_times_p99_are_chosen_largest_first() -> None:
    maxima = np.full(200, 2.0)
    maxima[[7, 50, 120]] = [30.0, 25.0, 3.0]
    assert outlier_channels(maxima, ratio=2.0, max_channels=8).tolist() == [7, 50]
    assert outlier_channels(maxima, ratio=2.0, max_channels=1).tolist() == [7]
    assert outlier_channels(maxima, ratio=100.0, max_channels=8).tolist() == []


def test_config_patterns_pick_the_ffn_matmuls_only(bundle) -> None:
    import yaml

    cfg = yaml.safe_load((REPO_ROOT / "configs" / "export.yaml").read_text())["export"]["quantization"]
    m = onnx.load(str(bundle / "model.fp32.onnx"))
    names = [n.name for n in target_matmuls(m, cfg["outlier_channels"]["matmuls"])]
    layers = sum("intermediate/dense/MatMul" in n for n in names)
    assert layers >= 1 and len(names) == 2 * layers
    assert not any("attention" in n for n in names)


@pytest.fixture
def windows(bundle) -> tuple[list, int]:
    enc = WindowEncoder.from_file(str(bundle / "tokenizer.json"), read_manifest(bundle).window)
    convs = read_split(str(bundle.parent / "splits" / "test.parquet"))
    return export.collect_windows(convs, enc).windows, enc.pad_id


def _logits(path: Path, windows: list, pad_id: int) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids, mask, types = pad_batch(windows, pad_id)
    feed = {"input_ids": np.asarray(ids), "attention_mask": np.asarray(mask), "token_type_ids": np.asarray(types)}
    return sess.run(None, {i.name: feed[i.name] for i in sess.get_inputs()})[0]


def test_split_graph_keeps_the_logits_and_its_side_paths_stay_fp32(bundle, windows, tmp_path: Path) -> None:
    wins, pad = windows
    fp32 = bundle / "model.fp32.onnx"
    split_path = tmp_path / "split.onnx"
    # ratio 0: every MatMul moves its top 3 channels, so the rewrite is exercised on the random model
    split = split_outlier_channels(fp32, split_path, wins, pad, patterns=FFN, ratio=0.0, max_channels=3)
    assert split and all(len(c) == 3 for c in split.values())
    np.testing.assert_allclose(_logits(split_path, wins, pad), _logits(fp32, wins, pad), atol=1e-5)

    int8 = tmp_path / "int8.onnx"
    excluded = export.quantize_int8(split_path, int8, always_fp32=[n + FP32_SUFFIX for n in split])
    assert excluded == []
    nodes = {n.name: n.op_type for n in onnx.load(str(int8)).graph.node}
    assert all(nodes.get(n + FP32_SUFFIX) == "MatMul" for n in split)
    assert any(op in ("MatMulInteger", "DynamicQuantizeMatMul") for op in nodes.values())
    assert np.abs(_logits(int8, wins, pad) - _logits(fp32, wins, pad)).max() < 0.5


def test_export_with_outlier_channels_on(tmp_path: Path, base_tokenizer_path) -> None:
    import json
    import shutil

    import yaml

    from tests.serving_fixtures import build_checkpoint, write_test_split

    ckpt, thresholds = build_checkpoint(tmp_path, base_tokenizer_path)
    split = write_test_split(tmp_path)
    configs = tmp_path / "configs"
    shutil.copytree(REPO_ROOT / "configs", configs)
    cfg = yaml.safe_load((configs / "export.yaml").read_text())
    cfg["export"]["quantization"]["outlier_channels"].update(enabled=True, ratio=0.0, max_per_matmul=2)
    (configs / "export.yaml").write_text(yaml.safe_dump(cfg))
    bundle = tmp_path / "bundle"
    args = ["--checkpoint", str(ckpt), "--thresholds", str(thresholds), "--test-split", str(split),
            "--calibration-split", str(split), "--bundle", str(bundle), "--metrics", str(tmp_path / "export.json"),
            "--lock", str(tmp_path / "none.lock"), "--config-dir", str(configs), "--profile", "default",
            "--no-mlflow"]  # fmt: skip
    assert export.main(args) == 0
    metrics = json.loads((tmp_path / "export.json").read_text())
    layers = metrics["int8_outlier_channels"]["matmuls"] // 2
    assert layers >= 1 and metrics["int8_outlier_channels"] == {"matmuls": 2 * layers, "channels": 4 * layers}
    split_channels = read_manifest(bundle).extra["quantization"]["outlier_channels_fp32"]
    assert all(len(c) == 2 for c in split_channels.values())
    nodes = {n.name for n in onnx.load(str(bundle / "model.onnx")).graph.node}
    assert all(name + FP32_SUFFIX in nodes for name in split_channels)
    assert not (tmp_path / "bundle.split.onnx").exists()
    assert metrics["fp32_max_abs_logit"] <= 1e-4  # the bundle's fp32 model is the plain export


def test_missing_calibration_split_is_a_clear_error(tmp_path: Path, bundle) -> None:
    enc = WindowEncoder.from_file(str(bundle / "tokenizer.json"), read_manifest(bundle).window)
    with pytest.raises(export.ExportError, match="calibration split not found"):
        export.calibration_windows(tmp_path / "valid.parquet", enc, 10)
