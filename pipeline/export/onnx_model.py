"""The ONNX artefacts: export the fine-tuned checkpoint, quantise it to int8, save onnxruntime's fusions."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


class _LogitsOnly:
    """Wraps the HF model so the graph has exactly one output named `logits`."""

    def __new__(cls, model: Any) -> Any:
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001
                return self.inner(
                    input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                ).logits

        return Wrapper(model).eval()


def export_onnx(model: Any, path: Path, *, opset: int = 17, vocab_size: int | None = None) -> None:
    """torch.onnx.export (TorchScript exporter) with dynamic batch and sequence axes."""
    import torch

    wrapped = _LogitsOnly(model)
    vocab = vocab_size or int(model.config.vocab_size)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (2, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    dyn = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    dyn["logits"] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(
            wrapped,
            (ids, mask, types),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=["logits"],
            dynamic_axes=dyn,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    import onnx

    onnx.checker.check_model(str(path))


def quantize_int8(fp32_path: Path, int8_path: Path, *, per_channel: bool = True) -> None:
    """Dynamic int8 quantisation of the weights (activations quantised at run time, per tensor)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # the quantiser logs every node at INFO on the root logger
    try:
        quantize_dynamic(
            str(fp32_path),
            str(int8_path),
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
        )
    finally:
        root.setLevel(level)


def preoptimize(path: Path, level: str = "extended", disabled_optimizers: Sequence[str] = ()) -> None:
    """Save onnxruntime's graph optimisations into the model file, in place.

    Why: every fresh scorer otherwise redoes the same fusions (DynamicQuantizeMatMul, LayerNorm, GELU) while
    building its session, ~50 ms of its ready time on our CPU. "extended" fusions are portable across CPUs;
    "all" may bake in layouts specific to the machine that ran the export, so it is refused. The result uses
    onnxruntime's com.microsoft operators, so it needs onnxruntime (which the serving package is built on).
    `disabled_optimizers` are left out here as in the served sessions (bundle.json `session`): a fusion baked
    into the file could not be undone at load.
    """
    import onnxruntime as ort

    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[level]
    so.log_severity_level = 3
    tmp = path.with_name(path.stem + ".opt.onnx")
    so.optimized_model_filepath = str(tmp)
    ort.InferenceSession(
        str(path), sess_options=so, providers=["CPUExecutionProvider"], disabled_optimizers=list(disabled_optimizers)
    )
    os.replace(tmp, path)
