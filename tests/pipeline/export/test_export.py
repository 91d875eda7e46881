"""Export stage on the tiny checkpoint: parity metrics, gates, bundle, MLflow logging."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.common.config import ConfigError, load_config, typed
from pipeline.export import onnx_model
from pipeline.export.config import ExportConfig
from pipeline.export.parity import collect_windows
from pipeline.model.modeling import torch_logits
from pipeline.stages import export
from serving.bundle import read_manifest
from tests.serving_fixtures import REPO_ROOT, build_checkpoint, write_test_split


def _args(root: Path, ckpt: Path, thresholds: Path, split: Path, config_dir: Path) -> list[str]:
    return [
        "--checkpoint", str(ckpt), "--thresholds", str(thresholds), "--test-split", str(split),
        "--calibration-split", str(split),
        "--bundle", str(root / "bundle"), "--metrics", str(root / "export.json"), "--lock", str(root / "none.lock"),
        "--config-dir", str(config_dir), "--profile", "default", "--torch-logits", str(root / "test_logits.npz"),
        "--gates", str(root / "gates.json"),
    ]  # fmt: skip


def test_parity_metrics_and_bundle(bundle) -> None:
    metrics = json.loads((bundle.parent / "metrics" / "export.json").read_text())
    assert metrics["passed"] is True and metrics["failures"] == []
    assert metrics["windows"] > 30 and metrics["conversations"] == 12
    assert metrics["fp32_max_abs_logit"] <= 1e-4
    assert metrics["int8_decision_agreement"] >= 0.995
    assert 0 <= metrics["int8_mean_abs_prob"] <= metrics["int8_max_abs_prob"] < 0.05
    assert metrics["size_mb"]["int8"] < metrics["size_mb"]["fp32"]
    assert metrics["files"] == dict(read_manifest(bundle).files)
    import onnx

    m = onnx.load(str(bundle / "model.fp32.onnx"))
    assert [i.name for i in m.graph.input] == list(onnx_model.INPUT_NAMES)
    assert [o.name for o in m.graph.output] == ["logits"]
    dims = [d.dim_param for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]
    assert m.opset_import[0].version == 17
    q = onnx.load(str(bundle / "model.onnx"))
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in q.graph.node)
    # pre-optimised (configs/export.yaml quantization.preoptimize): the fusions are in the file already
    assert read_manifest(bundle).extra["quantization"]["preoptimized"] == "extended"
    assert any(n.domain == "com.microsoft" for n in q.graph.node)
    # export.session.disabled_optimizers: recorded for the scorer, applied to its sessions, left out of the file
    assert read_manifest(bundle).disabled_optimizers == ("SkipLayerNormFusion",)
    assert not any(n.op_type == "SkipLayerNormalization" for n in q.graph.node)
    from serving.guard import Guard

    assert Guard.load(bundle).model.disabled_optimizers == ("SkipLayerNormFusion",)
    assert Guard.load(bundle, disabled_optimizers=[]).model.disabled_optimizers == ()


def test_preoptimize_keeps_the_logits(tmp_path: Path, bundle) -> None:
    import numpy as np
    import onnxruntime as ort

    plain = tmp_path / "plain.onnx"
    onnx_model.quantize_int8(bundle / "model.fp32.onnx", plain)
    fused = tmp_path / "fused.onnx"
    shutil.copyfile(plain, fused)
    onnx_model.preoptimize(fused, "extended")
    rng = np.random.default_rng(0)
    feeds = {
        "input_ids": rng.integers(5, 90, (2, 9)),
        "attention_mask": np.ones((2, 9), dtype=np.int64),
        "token_type_ids": np.zeros((2, 9), dtype=np.int64),
    }
    a, b = (ort.InferenceSession(str(p)).run(None, feeds)[0] for p in (plain, fused))
    np.testing.assert_allclose(a, b, atol=1e-5)
    import onnx

    assert any(n.op_type == "SkipLayerNormalization" for n in onnx.load(str(fused)).graph.node)
    unfused = tmp_path / "unfused.onnx"
    shutil.copyfile(plain, unfused)
    onnx_model.preoptimize(unfused, "extended", ["SkipLayerNormFusion"])
    assert not any(n.op_type == "SkipLayerNormalization" for n in onnx.load(str(unfused)).graph.node)
    c = ort.InferenceSession(str(unfused)).run(None, feeds)[0]
    np.testing.assert_allclose(a, c, atol=1e-3)
    raw = load_config("export", "default", REPO_ROOT / "configs")["export"]
    with pytest.raises(ConfigError, match="session.disabled_optimizers: must be a list"):
        typed(ExportConfig, {**raw, "session": {"disabled_optimizers": "SkipLayerNormFusion"}}, "export")
    with pytest.raises(ConfigError, match="preoptimize"):  # "all" could bake in the exporting CPU's layouts
        typed(ExportConfig, {**raw, "quantization": {**raw["quantization"], "preoptimize": "all"}}, "export")


def test_failed_gate_writes_metrics_but_no_bundle(tmp_path: Path, base_tokenizer_path) -> None:
    ckpt, thresholds = build_checkpoint(tmp_path, base_tokenizer_path, seed=1)
    split = write_test_split(tmp_path)
    configs = tmp_path / "configs"
    shutil.copytree(REPO_ROOT / "configs", configs)
    cfg = yaml.safe_load((configs / "export.yaml").read_text())
    cfg["export"]["parity"]["min_served_decision_agreement"] = 1.01  # impossible
    cfg["export"]["parity"]["enforce"] = True
    (configs / "export.yaml").write_text(yaml.safe_dump(cfg))
    assert export.main([*_args(tmp_path, ckpt, thresholds, split, configs), "--no-mlflow"]) == 1
    metrics = json.loads((tmp_path / "export.json").read_text())
    assert metrics["passed"] is False and "served decision agreement" in metrics["failures"][0]
    assert metrics["decision_agreement_gated"] == "served_decision_agreement"
    assert not (tmp_path / "bundle").exists() and not (tmp_path / "bundle.tmp").exists()
    # not enforced (e.g. the smoke profile's random model): recorded, bundle kept
    cfg["export"]["parity"]["enforce"] = False
    (configs / "export.yaml").write_text(yaml.safe_dump(cfg))
    assert export.main([*_args(tmp_path, ckpt, thresholds, split, configs), "--no-mlflow"]) == 0
    metrics = json.loads((tmp_path / "export.json").read_text())
    assert metrics["passed"] is False and metrics["enforced"] is False
    assert (tmp_path / "bundle" / "bundle.json").exists()


def test_parity_reuses_evaluates_torch_logits_only_for_the_same_checkpoint(tmp_path: Path, base_tokenizer_path) -> None:
    from pipeline.data.split_files import read_split
    from pipeline.evaluation.logits import load_test_logits, save_test_logits
    from serving.window import WindowEncoder, WindowSpec

    ckpt, thresholds = build_checkpoint(tmp_path, base_tokenizer_path, seed=2)
    split = write_test_split(tmp_path)
    convs = read_split(str(split))
    inputs = export.load_inputs(ckpt, thresholds)
    enc = WindowEncoder.from_file(
        str(ckpt / "tokenizer.json"), WindowSpec.from_dict(json.loads((ckpt / "window.json").read_text()))
    )
    tw = collect_windows(convs, enc)
    keys = [(convs[c].id, t) for c, t in zip(tw.conv_index, tw.turn_index, strict=True)]
    logits = torch_logits(inputs.model, tw.windows, pad_id=enc.pad_id)
    # rows saved in another order come back in the asked order
    save_test_logits(tmp_path / "test_logits.npz", logits[::-1], keys[::-1], ckpt)
    np.testing.assert_array_equal(load_test_logits(tmp_path / "test_logits.npz", keys, ckpt), logits)
    assert load_test_logits(tmp_path / "test_logits.npz", [*keys, ("other", 0)], ckpt) is None
    assert export.main([*_args(tmp_path, ckpt, thresholds, split, REPO_ROOT / "configs"), "--no-mlflow"]) == 0
    metrics = json.loads((tmp_path / "export.json").read_text())
    assert metrics["torch_logits"] == "evaluate" and metrics["fp32_max_abs_logit"] <= 1e-4
    # another checkpoint's logits are not used
    other, _ = build_checkpoint(tmp_path / "other", base_tokenizer_path, seed=3)
    assert load_test_logits(tmp_path / "test_logits.npz", keys, other) is None


def test_the_bundle_records_evaluates_gate_verdict(bundle, tmp_path: Path) -> None:
    """bundle.json carries metrics/gates.json's verdict (the fixture's: recall failed, not enforced)."""
    gates = read_manifest(bundle).gates
    assert gates is not None and gates.verdict == "failed" and gates.failed == ("termination_recall",)
    assert gates.enforced is False and gates.gates["termination_recall"]["limit"] == 0.95
    assert gates.source.endswith("gates.json (evaluate)")
    assert json.loads((bundle / "bundle.json").read_text())["gates"]["failed"] == ["termination_recall"]


def test_export_without_a_verdict_records_none_and_a_bad_one_fails(tmp_path: Path, base_tokenizer_path, capsys) -> None:
    ckpt, thresholds = build_checkpoint(tmp_path, base_tokenizer_path)
    split = write_test_split(tmp_path)
    args = [*_args(tmp_path, ckpt, thresholds, split, REPO_ROOT / "configs"), "--no-mlflow", "--torch-logits", ""]
    assert export.main(args) == 0  # no gates.json: exported, verdict unknown
    assert read_manifest(tmp_path / "bundle").gates is None
    (tmp_path / "gates.json").write_text(json.dumps({"passed": "yes", "failed": []}))
    assert export.main(args) == 1
    assert "gates.json: gates.passed must be true or false" in capsys.readouterr().err


def test_bad_inputs_fail_with_one_line(tmp_path: Path, base_tokenizer_path, capsys) -> None:
    ckpt, thresholds = build_checkpoint(tmp_path, base_tokenizer_path)
    split = write_test_split(tmp_path)
    thresholds.write_text(json.dumps({"thresholds": {"abuse": 2.0}, "policy": {}}))
    assert export.main([*_args(tmp_path, ckpt, thresholds, split, REPO_ROOT / "configs"), "--no-mlflow"]) == 1
    assert "threshold for abuse must be in [0, 1]" in capsys.readouterr().err
    assert export.main([*_args(tmp_path, tmp_path / "nope", thresholds, split, REPO_ROOT / "configs")]) == 1
    assert "checkpoint folder not found" in capsys.readouterr().err


def test_mlflow_logging_registers_the_onnx_model(tmp_path: Path, base_tokenizer_path, monkeypatch) -> None:
    pytest.importorskip("pipeline.common.tracking")
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.setenv("ESCALATION_GUARD_SYSTEM_METRICS", "0")
    ckpt, thresholds = build_checkpoint(tmp_path, base_tokenizer_path)
    split = write_test_split(tmp_path)
    assert export.main(_args(tmp_path, ckpt, thresholds, split, REPO_ROOT / "configs")) == 0
    metrics = json.loads((tmp_path / "export.json").read_text())
    info = metrics["mlflow"]
    client = mlflow.MlflowClient()
    run = client.get_run(info["run_id"])
    assert run.data.metrics["export.int8_decision_agreement"] == metrics["int8_decision_agreement"]
    mv = client.get_model_version_by_alias(export.ONNX_MODEL_NAME, "candidate")
    assert mv.run_id == info["run_id"]
    mlmodel = Path(mlflow.artifacts.download_artifacts(info["model_uri"], dst_path=str(tmp_path / "dl"))) / "MLmodel"
    text = mlmodel.read_text()
    assert "CPUExecutionProvider" in text and "CUDAExecutionProvider" not in text
