"""Export stage: fine-tuned checkpoint -> ONNX fp32 -> int8, parity-checked, written as the serving bundle.

Parity is measured on every test-split window, scored exactly as production
scores them (serving.window, serving.calibration, serving.policy):
  - fp32 ONNX vs PyTorch: max |Δlogit| (gate: <= max_abs_logit_fp32),
  - int8 vs fp32: max / mean |Δprob| and *decision* agreement: the share of
    test conversations whose replayed outcome (end turn and reason, or no end) is
    the same (gate: >= min_decision_agreement_int8).
The bundle is only put in place when both gates pass; metrics/export.json is
written either way so a failure can be read.

    python -m pipeline.stages.export [--checkpoint DIR] [--thresholds FILE] [--test-split FILE] [--bundle DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.common.config import ConfigError, load_config
from pipeline.data.split_files import read_split
from pipeline.evaluation.logits import load_test_logits
from pipeline.export.outlier_channels import FP32_SUFFIX as OUTLIER_FP32_SUFFIX
from pipeline.export.outlier_channels import split_outlier_channels
from pipeline.export.outlier_channels import summary as outlier_summary
from serving.bundle import MODEL_FILES, TOKENIZER_FILE, read_manifest, write_manifest
from serving.calibration import scores_dicts, scores_from_logits, temperature_vector
from serving.labels import MODEL_LABELS
from serving.policy import PolicyConfig, first_end, replay
from serving.rescore import RescoreConfig, blend, margin_from_errors
from serving.schema import Conversation
from serving.session import OnnxModel
from serving.window import WindowEncoder, WindowSpec, pad_batch

log = logging.getLogger("pipeline.stages.export")

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
ONNX_MODEL_NAME = "escalation-guard-scorer-onnx"


class ExportError(RuntimeError):
    """A gate failed or an input is unusable; the message says which."""


# --------------------------------------------------------------------------- inputs
@dataclass
class CheckpointInputs:
    model: Any  # transformers PreTrainedModel
    tokenizer_file: Path
    window: WindowSpec
    policy: PolicyConfig
    temperatures: dict[str, float]
    thresholds_doc: dict[str, Any]
    train_info: dict[str, Any]


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise ExportError(f"{path}: {what} not found")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path}: unreadable {what}: {exc}") from None
    if not isinstance(doc, dict):
        raise ExportError(f"{path}: {what} must be a JSON object")
    return doc


def load_policy(thresholds_doc: Mapping[str, Any], source: str = "thresholds.json") -> tuple[PolicyConfig, dict]:
    """The evaluated policy (with its calibrated thresholds) and temperatures from `evaluate`'s output."""
    try:
        policy = PolicyConfig.from_dict(thresholds_doc.get("policy") or {})
        policy = policy.with_thresholds(thresholds_doc.get("thresholds") or {})
        temps = {k: float(v) for k, v in (thresholds_doc.get("temperatures") or {}).items()}
        temperature_vector(temps)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"{source}: {exc}") from None
    unknown = set(temps) - set(MODEL_LABELS)
    if unknown:
        raise ExportError(f"{source}: temperatures for unknown labels {sorted(unknown)}")
    return policy, temps


def load_inputs(checkpoint: Path, thresholds: Path) -> CheckpointInputs:
    """The checkpoint (eager attention: it exports cleanly) and everything that ships beside it."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    if not checkpoint.is_dir():
        raise ExportError(f"{checkpoint}: checkpoint folder not found (run the train stage)")
    tok = checkpoint / TOKENIZER_FILE
    if not tok.is_file():
        raise ExportError(f"{tok}: not found; the serving runtime needs the fast tokenizer file")
    window = WindowSpec.from_dict(_read_json(checkpoint / "window.json", "window spec"))
    info_path = checkpoint / "train_info.json"
    train_info = _read_json(info_path, "train info") if info_path.exists() else {}
    doc = _read_json(thresholds, "thresholds")
    policy, temps = load_policy(doc, str(thresholds))
    hf_logging.set_verbosity_error()
    model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint), attn_implementation="eager")
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if tuple(labels) != MODEL_LABELS:
        raise ExportError(f"{checkpoint}: head labels {labels} do not match MODEL_LABELS {list(MODEL_LABELS)}")
    model.eval()
    return CheckpointInputs(model, tok, window, policy, temps, doc, train_info)


# --------------------------------------------------------------------------- export + quantise
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


def quantize_int8(
    fp32_path: Path,
    int8_path: Path,
    *,
    per_channel: bool = True,
    reduce_range: bool = False,
    exclude_patterns: Sequence[str] = (),
    always_fp32: Sequence[str] = (),
) -> list[str]:
    """Dynamic int8 quantisation of the weights (activations quantised at run time).

    Nodes whose name matches one of `exclude_patterns` (regexes) stay fp32: the
    knob for layers whose activations quantise badly. Returns the excluded names.
    `always_fp32` names nodes kept fp32 by construction (the outlier-channel side paths), not reported.
    """
    import re

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = [n.name for n in onnx.load(str(fp32_path), load_external_data=False).graph.node]
    excluded = [n for n in names if any(re.search(p, n) for p in exclude_patterns) and n not in always_fp32]

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # the quantiser logs every node at INFO on the root logger
    try:
        quantize_dynamic(
            str(fp32_path),
            str(int8_path),
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=[*excluded, *always_fp32],
        )
    finally:
        root.setLevel(level)
    return excluded


# --------------------------------------------------------------------------- parity
@dataclass
class TestWindows:
    """Every scored (non-system) turn of the test split, as the serving scorer windows it."""

    windows: list[tuple[list[int], list[int]]]
    conv_index: list[int]
    turn_index: list[int]


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
    if level not in levels:
        raise ConfigError(f"export.quantization.preoptimize must be one of {sorted(levels)} or null, got {level!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[level]
    so.log_severity_level = 3
    tmp = path.with_name(path.stem + ".opt.onnx")
    so.optimized_model_filepath = str(tmp)
    ort.InferenceSession(
        str(path), sess_options=so, providers=["CPUExecutionProvider"], disabled_optimizers=list(disabled_optimizers)
    )
    os.replace(tmp, path)


def session_disabled_optimizers(cfg: Mapping[str, Any]) -> list[str]:
    """`export.session.disabled_optimizers`: the onnxruntime fusions every scorer session skips (bundle.json)."""
    names = (cfg.get("session") or {}).get("disabled_optimizers") or []
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise ConfigError(f"export.session.disabled_optimizers must be a list of optimizer names, got {names!r}")
    return list(names)


def collect_windows(conversations: Sequence[Conversation], encoder: WindowEncoder) -> TestWindows:
    tw = TestWindows([], [], [])
    for ci, conv in enumerate(conversations):
        turns = [(t.role, t.text) for t in conv.turns]
        for ti, (w, (role, _)) in enumerate(zip(encoder.encode_conversation(turns), turns, strict=True)):
            if role == "system":
                continue
            tw.windows.append(w)
            tw.conv_index.append(ci)
            tw.turn_index.append(ti)
    return tw


def calibration_windows(
    split_path: Path, encoder: WindowEncoder, limit: int, purpose: str = "export.quantization.outlier_channels"
) -> tuple[list, list[str]]:
    """Up to `limit` windows spread evenly over a split, and their turns' roles (valid: choices made at export
    never see test). `purpose` names the config that asked, for the error message."""
    if not split_path.is_file():
        raise ExportError(f"{split_path}: calibration split not found ({purpose})")
    convs = read_split(str(split_path))
    tw = collect_windows(convs, encoder)
    if not tw.windows:
        raise ExportError(f"{split_path}: no calibration windows ({purpose})")
    step = max(1, len(tw.windows) // max(1, limit))
    return tw.windows[::step][:limit], window_roles(convs, tw)[::step][:limit]


def _batches(windows: Sequence, batch_size: int) -> list[list[int]]:
    order = sorted(range(len(windows)), key=lambda i: len(windows[i][0]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def torch_logits(model: Any, windows: Sequence, pad_id: int, batch_size: int = 64, desc: str = "torch") -> np.ndarray:
    import torch

    out = np.zeros((len(windows), len(MODEL_LABELS)), dtype=np.float32)
    with torch.inference_mode():
        for idx in tqdm(_batches(windows, batch_size), desc=desc, unit="batch", file=sys.stderr):
            ids, mask, types = pad_batch([windows[i] for i in idx], pad_id)
            logits = model(
                input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types)
            ).logits
            out[idx] = logits.float().numpy()
    return out


def onnx_logits(
    model: OnnxModel, windows: Sequence, pad_id: int, batch_size: int = 64, desc: str = "onnx"
) -> np.ndarray:
    out = np.zeros((len(windows), len(MODEL_LABELS)), dtype=np.float32)
    for idx in tqdm(_batches(windows, batch_size), desc=desc, unit="batch", file=sys.stderr):
        ids, mask, types = pad_batch([windows[i] for i in idx], pad_id)
        out[idx] = model.run(np.asarray(ids), np.asarray(mask), np.asarray(types))
    return out


def replay_outcomes(
    conversations: Sequence[Conversation], tw: TestWindows, probs: np.ndarray, policy: PolicyConfig
) -> tuple[list[tuple[int | None, str | None]], list[list[tuple[str, str]]]]:
    """Per conversation: (end turn, reason) of the first end, and every turn's (action, reason)."""
    per_conv: list[dict[int, dict[str, float]]] = [{} for _ in conversations]
    for row, (ci, ti) in zip(scores_dicts(probs), zip(tw.conv_index, tw.turn_index, strict=True), strict=True):
        per_conv[ci][ti] = row
    outcomes, turn_actions = [], []
    for conv, scored in zip(conversations, per_conv, strict=True):
        roles = [t.role for t in conv.turns]
        actions = replay(policy, roles, [scored.get(i, {}) for i in range(len(roles))], stop_at_end=False)
        end = first_end(actions)
        outcomes.append((None, None) if end is None else (end.index, end.reason))
        turn_actions.append([(a.action, a.reason) for a in actions])
    return outcomes, turn_actions


def parity_metrics(
    conversations: Sequence[Conversation],
    tw: TestWindows,
    logits_torch: np.ndarray,
    logits_fp32: np.ndarray,
    logits_int8: np.ndarray,
    policy: PolicyConfig,
    temperatures: Mapping[str, float],
    rescore: RescoreConfig | None = None,
) -> dict[str, Any]:
    """Parity of the exported models on every test window; with `rescore`, also of what the serving scorer
    decides (int8, with turns near a threshold re-scored by fp32)."""
    temps = temperature_vector(temperatures)
    p_torch = scores_from_logits(logits_torch, temps)
    p_fp32 = scores_from_logits(logits_fp32, temps)
    p_int8 = scores_from_logits(logits_int8, temps)
    d_logit = np.abs(logits_fp32.astype(np.float64) - logits_torch)
    d_prob = np.abs(p_int8 - p_fp32)
    out_torch, _ = replay_outcomes(conversations, tw, p_torch, policy)
    out_fp32, act_fp32 = replay_outcomes(conversations, tw, p_fp32, policy)
    out_int8, act_int8 = replay_outcomes(conversations, tw, p_int8, policy)
    n_conv = max(len(conversations), 1)
    turn_pairs = [(a, b) for fa, ia in zip(act_fp32, act_int8, strict=True) for a, b in zip(fa, ia, strict=True)]
    disagreements = [
        {"id": c.id, "fp32": list(a), "int8": list(b)}
        for c, a, b in zip(conversations, out_fp32, out_int8, strict=True)
        if a != b
    ]
    return {
        "conversations": len(conversations),
        "windows": len(tw.windows),
        "fp32_max_abs_logit": float(d_logit.max()) if d_logit.size else 0.0,
        "fp32_mean_abs_logit": float(d_logit.mean()) if d_logit.size else 0.0,
        "int8_max_abs_prob": float(d_prob.max()) if d_prob.size else 0.0,
        "int8_mean_abs_prob": float(d_prob.mean()) if d_prob.size else 0.0,
        "int8_max_abs_prob_per_label": {
            name: float(d_prob[:, j].max()) if d_prob.size else 0.0 for j, name in enumerate(MODEL_LABELS)
        },
        "int8_decision_agreement": sum(a == b for a, b in zip(out_fp32, out_int8, strict=True)) / n_conv,
        "int8_turn_action_agreement": (sum(a == b for a, b in turn_pairs) / len(turn_pairs)) if turn_pairs else 1.0,
        "int8_vs_torch_decision_agreement": sum(a == b for a, b in zip(out_torch, out_int8, strict=True)) / n_conv,
        "fp32_vs_torch_decision_agreement": sum(a == b for a, b in zip(out_torch, out_fp32, strict=True)) / n_conv,
        "ended_fp32": sum(a[0] is not None for a in out_fp32),
        "ended_int8": sum(a[0] is not None for a in out_int8),
        "disagreements": disagreements[:50],
        **(served_parity(conversations, tw, p_fp32, p_int8, out_fp32, policy, rescore) if rescore else {}),
    }


def window_roles(conversations: Sequence[Conversation], tw: TestWindows) -> list[str]:
    return [conversations[c].turns[t].role for c, t in zip(tw.conv_index, tw.turn_index, strict=True)]


def served_parity(
    conversations: Sequence[Conversation],
    tw: TestWindows,
    p_fp32: np.ndarray,
    p_int8: np.ndarray,
    out_fp32: list,
    policy: PolicyConfig,
    rescore: RescoreConfig,
) -> dict[str, Any]:
    """Decision agreement of the served scorer (int8 + re-scoring near thresholds) with fp32."""
    p_served, near = blend(p_int8, p_fp32, window_roles(conversations, tw), policy.thresholds, rescore.margin)
    out_served, _ = replay_outcomes(conversations, tw, p_served, policy)
    n_conv = max(len(conversations), 1)
    return {
        "served_decision_agreement": sum(a == b for a, b in zip(out_fp32, out_served, strict=True)) / n_conv,
        "served_rescored_share": float(near.mean()) if near.size else 0.0,
        "rescore_margin": float(rescore.margin),
        "served_disagreements": [
            {"id": c.id, "fp32": list(a), "served": list(b)}
            for c, a, b in zip(conversations, out_fp32, out_served, strict=True)
            if a != b
        ][:50],
    }


def fit_rescore(
    fp32_path: Path,
    int8_path: Path,
    calibration_split: Path,
    encoder: WindowEncoder,
    temperatures: Mapping[str, float],
    cfg: Mapping[str, Any],
    threads: int,
    disabled_optimizers: Sequence[str] = (),
) -> RescoreConfig:
    """The re-scoring margin: a quantile of int8's error on valid windows (never test), scored as served."""
    wins, roles = calibration_windows(
        calibration_split, encoder, int(cfg.get("calibration_windows", 3000)), "export.rescore"
    )
    temps = temperature_vector(temperatures)
    lf = onnx_logits(
        OnnxModel(fp32_path, threads=threads, disabled_optimizers=disabled_optimizers),
        wins,
        encoder.pad_id,
        64,
        desc="rescore fp32",
    )
    li = onnx_logits(
        OnnxModel(int8_path, threads=threads, disabled_optimizers=disabled_optimizers),
        wins,
        encoder.pad_id,
        1,
        desc="rescore int8",
    )
    quantile = float(cfg.get("quantile", 0.98))
    margin = margin_from_errors(scores_from_logits(li, temps), scores_from_logits(lf, temps), quantile, roles)
    source = (
        f"quantile {quantile} of |int8 - fp32| calibrated logit over {len(wins)} windows of {calibration_split.name}"
    )
    log.info("re-scoring margin %.3f (%s)", margin, source)
    return RescoreConfig(model=MODEL_FILES[str(cfg.get("model", "fp32"))], margin=round(margin, 4), source=source)


# --------------------------------------------------------------------------- MLflow
def log_to_mlflow(
    run_id: str | None, metrics: Mapping[str, Any], bundle_dir: Path, cfg: Mapping[str, Any], profile: str
) -> dict[str, Any]:
    """Resume the training run; log parity metrics, bundle.json and the int8 model (registered)."""
    import mlflow
    import onnx
    import onnxruntime

    from pipeline.common import tracking

    info: dict[str, Any] = {}
    try:
        active = tracking.start_or_resume_run(run_id, log_system_metrics=False)
    except Exception as exc:  # noqa: BLE001 - a missing run (other store) must not lose the export's record
        log.warning("could not resume MLflow run %s (%s); starting a new run", run_id, exc)
        active = tracking.start_or_resume_run(None, run_name="export", tags={"stage": "export", "profile": profile})
    with active as run:
        info["run_id"] = run.info.run_id
        scalar = {
            f"export.{k}": v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }
        tracking.log_metrics(scalar)
        tracking.retry(mlflow.log_artifact, str(bundle_dir / "bundle.json"), artifact_path="bundle")
        if cfg.get("log_model", True):
            pip = [
                f"onnxruntime=={onnxruntime.__version__}",
                f"onnx=={onnx.__version__}",
                f"numpy=={np.__version__}",
            ]
            model_info = tracking.retry(
                mlflow.onnx.log_model,
                onnx.load(str(bundle_dir / MODEL_FILES["int8"])),
                name=cfg.get("artifact_path", "onnx_model"),
                registered_model_name=ONNX_MODEL_NAME,
                onnx_execution_providers=["CPUExecutionProvider"],
                pip_requirements=pip,
                save_as_external_data=False,
            )
            info["model_uri"] = model_info.model_uri
            version = getattr(model_info, "registered_model_version", None)
            if version is not None:
                info["registered_version"] = str(version)
                client = mlflow.MlflowClient()
                tracking.retry(client.set_registered_model_alias, ONNX_MODEL_NAME, "candidate", str(version))
                digest = read_manifest(bundle_dir, verify=False).digest  # what a deployment pins
                tracking.retry(client.set_model_version_tag, ONNX_MODEL_NAME, str(version), "bundle_digest", digest)
                info["bundle_digest"] = digest
    return info


# --------------------------------------------------------------------------- main
def data_version(lock: Path, train_info: Mapping[str, Any]) -> str:
    try:
        from pipeline.common.tracking import data_version as dv

        v = dv(lock)
    except ImportError:
        v = "untracked"
    if v == "untracked" and train_info.get("data_version"):
        return str(train_info["data_version"])
    return v


def run_export(args: argparse.Namespace, cfg: Mapping[str, Any], profile: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    inputs = load_inputs(Path(args.checkpoint), Path(args.thresholds))
    conversations = read_split(args.test_split)
    if not conversations:
        raise ExportError(f"{args.test_split}: empty test split; parity needs windows")
    bundle_dir = Path(args.bundle)
    work = bundle_dir.with_name(bundle_dir.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    fp32_path, int8_path = work / MODEL_FILES["fp32"], work / MODEL_FILES["int8"]

    log.info("exporting %s to ONNX (opset %d)", args.checkpoint, cfg["opset"])
    export_onnx(inputs.model, fp32_path, opset=int(cfg["opset"]))
    shutil.copyfile(inputs.tokenizer_file, work / TOKENIZER_FILE)
    encoder = WindowEncoder.from_file(str(work / TOKENIZER_FILE), inputs.window)
    q = cfg.get("quantization") or {}
    to_quantize, split = fp32_path, {}
    oc = q.get("outlier_channels") or {}
    if oc.get("enabled", False):
        calib, _ = calibration_windows(Path(args.calibration_split), encoder, int(oc.get("calibration_windows", 3000)))
        to_quantize = bundle_dir.with_name(bundle_dir.name + ".split.onnx")  # not part of the bundle
        split = split_outlier_channels(
            fp32_path,
            to_quantize,
            calib,
            encoder.pad_id,
            patterns=list(oc["matmuls"]),
            ratio=float(oc.get("ratio", 2.0)),
            max_channels=int(oc.get("max_per_matmul", 8)),
        )
        log.info("outlier input channels kept fp32 (%d calibration windows): %s", len(calib), outlier_summary(split))
    log.info("quantising to int8 (per_channel=%s)", q.get("per_channel", True))
    try:
        excluded = quantize_int8(
            to_quantize,
            int8_path,
            per_channel=bool(q.get("per_channel", True)),
            reduce_range=bool(q.get("reduce_range", False)),
            exclude_patterns=list(q.get("exclude_patterns") or []),
            always_fp32=[name + OUTLIER_FP32_SUFFIX for name in split],
        )
    finally:
        if to_quantize != fp32_path:
            to_quantize.unlink(missing_ok=True)
    if excluded:
        log.info("kept in fp32 (quantization.exclude_patterns): %d nodes", len(excluded))
    disabled = session_disabled_optimizers(cfg)
    if q.get("preoptimize"):
        preoptimize(int8_path, str(q["preoptimize"]), disabled)
        log.info("int8 graph pre-optimised (%s) for faster session start", q["preoptimize"])
    tw = collect_windows(conversations, encoder)
    par = cfg.get("parity") or {}
    bs = int(par.get("batch_size", 64))
    log.info("parity over %d windows of %d test conversations", len(tw.windows), len(conversations))
    timings = {}
    t1 = time.perf_counter()
    keys = [(conversations[c].id, t) for c, t in zip(tw.conv_index, tw.turn_index, strict=True)]
    lt = load_test_logits(args.torch_logits, keys, args.checkpoint) if args.torch_logits else None
    torch_source = "evaluate" if lt is not None else "scored here"
    if lt is None:
        lt = torch_logits(inputs.model, tw.windows, encoder.pad_id, bs, desc="torch fp32")
    else:
        log.info("PyTorch test logits from %s (same checkpoint, every window)", args.torch_logits)
    timings["torch_s"], t1 = round(time.perf_counter() - t1, 1), time.perf_counter()
    lf = onnx_logits(
        OnnxModel(fp32_path, threads=args.threads, disabled_optimizers=disabled),
        tw.windows,
        encoder.pad_id,
        bs,
        desc="onnx fp32",
    )
    timings["onnx_fp32_s"], t1 = round(time.perf_counter() - t1, 1), time.perf_counter()
    li = onnx_logits(
        OnnxModel(int8_path, threads=args.threads, disabled_optimizers=disabled),
        tw.windows,
        encoder.pad_id,
        int(par.get("int8_batch_size", 1)),
        desc="onnx int8",
    )
    timings["onnx_int8_s"] = round(time.perf_counter() - t1, 1)
    rcfg = cfg.get("rescore") or {}
    rescore = None
    if rcfg.get("enabled", False):
        t1 = time.perf_counter()
        rescore = fit_rescore(
            fp32_path,
            int8_path,
            Path(args.calibration_split),
            encoder,
            inputs.temperatures,
            rcfg,
            args.threads,
            disabled,
        )
        timings["rescore_fit_s"] = round(time.perf_counter() - t1, 1)
    log.info("parity scoring times: %s", timings)
    metrics = parity_metrics(conversations, tw, lt, lf, li, inputs.policy, inputs.temperatures, rescore)
    max_logit = float(par.get("max_abs_logit_fp32", 1e-4))
    min_agree = float(par.get("min_decision_agreement_int8", 0.995))
    failures = []
    if metrics["fp32_max_abs_logit"] > max_logit:
        failures.append(f"fp32 max |Δlogit| {metrics['fp32_max_abs_logit']:.3g} > {max_logit:g}")
    # The gate is on what production decides: int8 alone, or int8 with re-scoring near thresholds when the
    # bundle ships it (Guard.load's default). The int8-alone agreement is reported either way.
    gated = "served_decision_agreement" if rescore is not None else "int8_decision_agreement"
    metrics["decision_agreement_gated"] = gated
    if metrics[gated] < min_agree:
        failures.append(f"{gated.replace('_', ' ')} {metrics[gated]:.4f} < {min_agree}")
    metrics.update(
        {
            "gates": {"max_abs_logit_fp32": max_logit, "min_decision_agreement_int8": min_agree},
            "passed": not failures,
            "failures": failures,
            "size_mb": {
                "fp32": round(fp32_path.stat().st_size / 2**20, 2),
                "int8": round(int8_path.stat().st_size / 2**20, 2),
            },
            "opset": int(cfg["opset"]),
            "per_channel": bool(q.get("per_channel", True)),
            "int8_outlier_channels": outlier_summary(split),
            "seconds": round(time.perf_counter() - t0, 1),
            "scoring_seconds": timings,
            "torch_logits": torch_source,
        }
    )
    metrics["enforced"] = bool(par.get("enforce", True))
    if failures and metrics["enforced"]:
        shutil.rmtree(work, ignore_errors=True)
        return metrics
    for f in failures:
        log.warning("parity gate failed (not enforced: export.parity.enforce is false): %s", f)

    manifest = write_manifest(
        work,
        window=inputs.window,
        policy=inputs.policy,
        temperatures=inputs.temperatures,
        rescore=rescore,
        disabled_optimizers=disabled,
        base_model=str(inputs.train_info.get("base_model", "unknown")),
        mlflow_run_id=inputs.train_info.get("mlflow_run_id"),
        data_version=data_version(Path(args.lock), inputs.train_info),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        extra={
            "profile": profile,
            "opset": int(cfg["opset"]),
            "quantization": {
                "mode": "dynamic",
                "weight_type": "int8",
                "per_channel": bool(q.get("per_channel", True)),
                "reduce_range": bool(q.get("reduce_range", False)),
                "excluded_nodes": excluded,
                "outlier_channels_fp32": split,
                "preoptimized": q.get("preoptimize") or None,
            },
            "parity": {
                k: metrics[k]
                for k in (
                    "fp32_max_abs_logit",
                    "int8_decision_agreement",
                    "int8_max_abs_prob",
                    "served_decision_agreement",
                    "served_rescored_share",
                )
                if k in metrics
            },
            "thresholds_source": {
                k: inputs.thresholds_doc.get(k)
                for k in ("target_false_termination_rate", "valid_false_termination_rate")
                if k in inputs.thresholds_doc
            },
        },
    )
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    os.replace(work, bundle_dir)
    metrics["files"] = dict(manifest.files)
    log.info("bundle written to %s", bundle_dir)

    mcfg = cfg.get("mlflow") or {}
    if mcfg.get("enabled", True) and not args.no_mlflow:
        metrics["mlflow"] = log_to_mlflow(inputs.train_info.get("mlflow_run_id"), metrics, bundle_dir, mcfg, profile)
    return metrics


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline.stages.export", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default="models/checkpoint")
    p.add_argument("--thresholds", default="models/thresholds.json")
    p.add_argument("--test-split", default="data/splits/test.parquet")
    p.add_argument(
        "--calibration-split",
        default="data/splits/valid.parquet",
        help="where the int8 outlier channels are chosen (export.quantization.outlier_channels)",
    )
    p.add_argument(
        "--torch-logits",
        default="models/test_logits.npz",
        help="evaluate's PyTorch test logits, used when they match this checkpoint and window set ('' to rescore)",
    )
    p.add_argument("--bundle", default="models/bundle")
    p.add_argument("--metrics", default="metrics/export.json")
    p.add_argument("--lock", default="dvc.lock", help="dvc.lock, for the data version recorded in the bundle")
    p.add_argument("--config-dir", default="configs")
    p.add_argument("--profile", default=None)
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads for parity scoring")
    p.add_argument("--no-mlflow", action="store_true", help="skip MLflow logging (tests)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    from pipeline.common.config import active_profile

    profile = args.profile or active_profile(Path(args.config_dir))
    cfg = load_config("export", profile, args.config_dir).get("export")
    if not isinstance(cfg, dict) or "opset" not in cfg:
        raise ConfigError(f"{args.config_dir}/export.yaml: missing export.opset")
    try:
        metrics = run_export(args, cfg, profile)
    except ExportError as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
    Path(args.metrics).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(
        f"parity: fp32 max|Δlogit|={metrics['fp32_max_abs_logit']:.2e}  int8 max|Δprob|={metrics['int8_max_abs_prob']:.4f} "
        f"mean|Δprob|={metrics['int8_mean_abs_prob']:.2e}  int8 decision agreement={metrics['int8_decision_agreement']:.4f} "
        f"({metrics['conversations']} conversations, {metrics['windows']} windows)"
        + (
            f"; served (int8, {metrics['served_rescored_share']:.1%} of turns re-scored by fp32 within "
            f"{metrics['rescore_margin']:.2f} of a threshold) decision agreement={metrics['served_decision_agreement']:.4f}"
            if "served_decision_agreement" in metrics
            else ""
        )
    )
    if not metrics["passed"] and metrics["enforced"]:
        print("export failed: " + "; ".join(metrics["failures"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
