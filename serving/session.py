"""The onnxruntime session behind the scorer.

Feeds are built from the inputs the graph declares (names and integer dtypes),
as fastembed does, so a model exported without `token_type_ids` or with int32
ids still loads. Threads default to 1: on small shared CPUs one intra-op thread
per process was faster than two (STACK-NOTES) and scaling is done with processes.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
#: Inputs the window encoder produces; a graph may declare any subset that includes input_ids.
KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_ORT_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


class SessionError(RuntimeError):
    """The model graph cannot be served (unexpected inputs or outputs)."""


def resolve_providers(requested: Sequence[str] | None) -> list[str]:
    """Requested providers that this onnxruntime build has, always ending with the CPU fallback.

    A requested provider that is absent (e.g. CUDA on a CPU wheel) is dropped with
    a warning rather than failing: the scorer must come up and answer.
    """
    available = set(ort.get_available_providers())
    out: list[str] = []
    for name in requested or (CPU,):
        if name in available:
            if name not in out:
                out.append(name)
        else:
            msg = f"execution provider {name} was requested but is not available in this onnxruntime build; falling back to {CPU}"
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
            log.warning(msg)
    if CPU not in out:
        out.append(CPU)
    return out


class OnnxModel:
    """One InferenceSession and the knowledge of how to feed it. `run` is thread-safe (ORT sessions are)."""

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int = 1,
        providers: Sequence[str] | None = None,
        optimization: str = "all",
        disabled_optimizers: Sequence[str] = (),
        name: str | None = None,
    ) -> None:
        """`disabled_optimizers`: onnxruntime graph transformers not to run (names as onnxruntime spells them,
        e.g. "SkipLayerNormFusion"; bundle.json `session`). Why: a fusion is not always faster on every CPU.
        `name`: what to call the model (`path.name` by default; the bundle's file name when `path` is a
        descriptor path, /proc/self/fd/N)."""
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, int(threads))
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[optimization]
        so.log_severity_level = 3
        self.path = Path(path)
        self.name = name or self.path.name
        self.providers = resolve_providers(providers)
        self.disabled_optimizers = tuple(disabled_optimizers)
        self.session = ort.InferenceSession(
            str(self.path),
            sess_options=so,
            providers=self.providers,
            disabled_optimizers=list(self.disabled_optimizers),
        )
        self.inputs: dict[str, type] = {}
        for inp in self.session.get_inputs():
            if inp.name not in KNOWN_INPUTS:
                raise SessionError(f"{self.name}: graph input {inp.name!r} is not one of {KNOWN_INPUTS}")
            if inp.type not in _ORT_INT_TYPES:
                raise SessionError(f"{self.name}: graph input {inp.name!r} has type {inp.type}, expected int64/int32")
            self.inputs[inp.name] = _ORT_INT_TYPES[inp.type]
        if "input_ids" not in self.inputs:
            raise SessionError(f"{self.name}: graph has no input_ids input")
        outputs = [o.name for o in self.session.get_outputs()]
        self.output = "logits" if "logits" in outputs else outputs[0]

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        """Logits [batch, labels] as float32 for a right-padded batch."""
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        feeds = {name: np.ascontiguousarray(given[name], dtype=dtype) for name, dtype in self.inputs.items()}
        (logits,) = self.session.run([self.output], feeds)
        return np.asarray(logits, dtype=np.float32)
