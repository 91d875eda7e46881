"""Export stage: fine-tuned checkpoint -> ONNX fp32 -> int8, parity-checked, written as the serving bundle.

Parity is measured on every test-split window, scored exactly as production scores them (serving.window,
serving.calibration, serving.policy; pipeline/export/parity.py):
  - fp32 ONNX vs PyTorch: max |Δlogit| (gate: <= parity.max_abs_logit_fp32),
  - what the served scorer decides (int8, turns near a threshold re-scored by fp32) vs fp32: the share of
    test conversations whose replayed outcome (end turn and reason, or no end) is the same (gate: >=
    parity.min_served_decision_agreement); int8 alone is reported beside it.
The bundle is put in place only when the gates pass (or `parity.enforce` is false); metrics/export.json is
written either way so a failure can be read, and a failed export leaves no work folder behind.

bundle.json also records the quality gates' verdict on this run (evaluate's metrics/gates.json: passed or not,
which gates failed, with values and limits), so that `python -m serving inspect` and `/readyz` show it.

    python -m pipeline.stages.export [--checkpoint DIR] [--thresholds FILE] [--test-split FILE] [--bundle DIR]
                                     [--gates FILE]
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

from pipeline.common.cli import run_stage
from pipeline.common.config import active_profile, section
from pipeline.data.split_files import read_split
from pipeline.evaluation.logits import load_test_logits
from pipeline.export.config import ExportConfig, MlflowConfig
from pipeline.export.onnx_model import export_onnx, preoptimize, quantize_int8
from pipeline.export.parity import ExportError, TestWindows, collect_windows, fit_rescore, onnx_logits, parity_metrics
from serving.bundle import MODEL_FILES, TOKENIZER_FILE, BundleError, GateVerdict, read_manifest, write_manifest
from serving.calibration import temperature_vector
from serving.labels import MODEL_LABELS
from serving.policy import PolicyConfig
from serving.session import OnnxModel
from serving.window import WindowEncoder, WindowSpec

log = logging.getLogger("pipeline.stages.export")
ONNX_MODEL_NAME = "escalation-guard-scorer-onnx"
#: The params this stage reads (dvc.yaml lists the same): (configs/<file>.yaml, section) -> its reader.
PARAMS = {("export", "export"): ExportConfig}


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
    #: evaluate's gate verdict (read_gates), recorded in bundle.json
    gates: GateVerdict | None = None


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


def log_to_mlflow(
    run_id: str | None, metrics: Mapping[str, Any], bundle_dir: Path, cfg: MlflowConfig, profile: str
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
        if cfg.log_model:
            pip = [
                f"onnxruntime=={onnxruntime.__version__}",
                f"onnx=={onnx.__version__}",
                f"numpy=={np.__version__}",
            ]
            model_info = tracking.retry(
                mlflow.onnx.log_model,
                onnx.load(str(bundle_dir / MODEL_FILES["int8"])),
                name=cfg.artifact_path,
                registered_model_name=ONNX_MODEL_NAME,
                onnx_execution_providers=["CPUExecutionProvider"],
                pip_requirements=pip,
                save_as_external_data=False,
                step=tracking.MODEL_STEP,  # not at 0: MLflow would copy the system metrics into the model
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


def build_models(args: argparse.Namespace, cfg: ExportConfig, inputs: CheckpointInputs, work: Path) -> WindowEncoder:
    """model.fp32.onnx, model.onnx (int8, pre-optimised) and tokenizer.json in `work`; returns the encoder."""
    fp32_path, int8_path = work / MODEL_FILES["fp32"], work / MODEL_FILES["int8"]
    log.info("exporting %s to ONNX (opset %d)", args.checkpoint, cfg.opset)
    export_onnx(inputs.model, fp32_path, opset=cfg.opset)
    shutil.copyfile(inputs.tokenizer_file, work / TOKENIZER_FILE)
    log.info("quantising to int8 (per_channel=%s)", cfg.quantization.per_channel)
    quantize_int8(fp32_path, int8_path, per_channel=cfg.quantization.per_channel)
    if cfg.quantization.preoptimize:
        preoptimize(int8_path, cfg.quantization.preoptimize, cfg.session.disabled_optimizers)
        log.info("int8 graph pre-optimised (%s) for faster session start", cfg.quantization.preoptimize)
    return WindowEncoder.from_file(str(work / TOKENIZER_FILE), inputs.window)


def score_parity(
    args: argparse.Namespace,
    cfg: ExportConfig,
    inputs: CheckpointInputs,
    work: Path,
    encoder: WindowEncoder,
    tw: TestWindows,
    conversations: list,
) -> tuple[dict[str, Any], Any]:
    """Logits of torch (evaluate's, when they are this checkpoint's), fp32 and int8 on every test window, and
    the re-scoring margin; returns (parity metrics, the rescore config)."""
    from pipeline.model.modeling import torch_logits

    disabled, par = cfg.session.disabled_optimizers, cfg.parity
    timings: dict[str, float] = {}
    t1 = time.perf_counter()
    keys = [(conversations[c].id, t) for c, t in zip(tw.conv_index, tw.turn_index, strict=True)]
    lt = load_test_logits(args.torch_logits, keys, args.checkpoint) if args.torch_logits else None
    torch_source = "evaluate" if lt is not None else "scored here"
    if lt is None:
        lt = torch_logits(
            inputs.model, tw.windows, batch_size=par.batch_size, pad_id=encoder.pad_id, progress="torch fp32"
        )
    else:
        log.info("PyTorch test logits from %s (same checkpoint, every window)", args.torch_logits)
    timings["torch_s"], t1 = round(time.perf_counter() - t1, 1), time.perf_counter()
    sessions = {
        k: OnnxModel(work / MODEL_FILES[k], threads=args.threads, disabled_optimizers=disabled)
        for k in ("fp32", "int8")
    }
    lf = onnx_logits(sessions["fp32"], tw.windows, encoder.pad_id, par.batch_size, desc="onnx fp32")
    timings["onnx_fp32_s"], t1 = round(time.perf_counter() - t1, 1), time.perf_counter()
    li = onnx_logits(sessions["int8"], tw.windows, encoder.pad_id, par.int8_batch_size, desc="onnx int8")
    timings["onnx_int8_s"] = round(time.perf_counter() - t1, 1)
    rescore = None
    if cfg.rescore.enabled:
        t1 = time.perf_counter()
        fp32, int8 = work / MODEL_FILES["fp32"], work / MODEL_FILES["int8"]
        split = Path(args.calibration_split)
        rescore = fit_rescore(fp32, int8, split, encoder, inputs.temperatures, cfg.rescore, args.threads, disabled)
        timings["rescore_fit_s"] = round(time.perf_counter() - t1, 1)
    log.info("parity scoring times: %s", timings)
    metrics = parity_metrics(conversations, tw, lt, lf, li, inputs.policy, inputs.temperatures, rescore)
    metrics.update(scoring_seconds=timings, torch_logits=torch_source)
    return metrics, rescore


def parity_gates(metrics: dict[str, Any], cfg: ExportConfig, served: bool) -> list[str]:
    """The failures of the parity gates. The agreement gate is on what production decides: int8 with
    re-scoring near thresholds when the bundle ships it (Guard.load's default), else int8 alone."""
    par, failures = cfg.parity, []
    if metrics["fp32_max_abs_logit"] > par.max_abs_logit_fp32:
        failures.append(f"fp32 max |Δlogit| {metrics['fp32_max_abs_logit']:.3g} > {par.max_abs_logit_fp32:g}")
    gated = "served_decision_agreement" if served else "int8_decision_agreement"
    metrics["decision_agreement_gated"] = gated
    if metrics[gated] < par.min_served_decision_agreement:
        failures.append(f"{gated.replace('_', ' ')} {metrics[gated]:.4f} < {par.min_served_decision_agreement}")
    return failures


def read_gates(path: Path) -> GateVerdict | None:
    """evaluate's gate verdict (metrics/gates.json) for bundle.json, so that `inspect` and `/readyz` show it.
    None when the file is absent (export run on its own): the bundle then reads "unknown"; a malformed file is
    an ExportError naming it."""
    if not path.is_file():
        log.warning("%s not found: the bundle will record no gate verdict (unknown)", path)
        return None
    doc = _read_json(path, "gate verdict")
    try:
        return GateVerdict.from_dict({**doc, "source": f"{path} (evaluate)"}, str(path))
    except BundleError as exc:
        raise ExportError(str(exc)) from None


def write_bundle(
    args: argparse.Namespace,
    cfg: ExportConfig,
    inputs: CheckpointInputs,
    work: Path,
    rescore: Any,
    metrics: Mapping[str, Any],
    profile: str,
):
    """bundle.json in `work`, then `work` moved into place as the bundle."""
    manifest = write_manifest(
        work,
        window=inputs.window,
        policy=inputs.policy,
        temperatures=inputs.temperatures,
        rescore=rescore,
        disabled_optimizers=cfg.session.disabled_optimizers,
        base_model=str(inputs.train_info.get("base_model", "unknown")),
        mlflow_run_id=inputs.train_info.get("mlflow_run_id"),
        data_version=data_version(Path(args.lock), inputs.train_info),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        gates=inputs.gates,
        extra={
            "profile": profile,
            "opset": cfg.opset,
            "quantization": {
                "mode": "dynamic",
                "weight_type": "int8",
                "per_channel": cfg.quantization.per_channel,
                "preoptimized": cfg.quantization.preoptimize,
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
    bundle_dir = Path(args.bundle)
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    os.replace(work, bundle_dir)
    log.info("bundle written to %s", bundle_dir)
    return manifest


def run_export(args: argparse.Namespace, cfg: ExportConfig, profile: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    inputs = load_inputs(Path(args.checkpoint), Path(args.thresholds))
    inputs.gates = read_gates(Path(args.gates))  # before the slow work: a malformed verdict fails at once
    conversations = read_split(args.test_split)
    if not conversations:
        raise ExportError(f"{args.test_split}: empty test split; parity needs windows")
    bundle_dir = Path(args.bundle)
    work = bundle_dir.with_name(bundle_dir.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        encoder = build_models(args, cfg, inputs, work)
        tw = collect_windows(conversations, encoder)
        log.info("parity over %d windows of %d test conversations", len(tw.windows), len(conversations))
        metrics, rescore = score_parity(args, cfg, inputs, work, encoder, tw, conversations)
        failures = parity_gates(metrics, cfg, rescore is not None)
        sizes = {k: round((work / MODEL_FILES[k]).stat().st_size / 2**20, 2) for k in ("fp32", "int8")}
        metrics.update(
            gates={
                "max_abs_logit_fp32": cfg.parity.max_abs_logit_fp32,
                "min_served_decision_agreement": cfg.parity.min_served_decision_agreement,
            },
            passed=not failures,
            failures=failures,
            size_mb=sizes,
            opset=cfg.opset,
            per_channel=cfg.quantization.per_channel,
            seconds=round(time.perf_counter() - t0, 1),
            enforced=cfg.parity.enforce,
        )
        if failures and cfg.parity.enforce:
            return metrics
        for f in failures:
            log.warning("parity gate failed (not enforced: export.parity.enforce is false): %s", f)
        manifest = write_bundle(args, cfg, inputs, work, rescore, metrics, profile)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # gone after a failure; moved into place after a success
    metrics["files"] = dict(manifest.files)
    if cfg.mlflow.enabled and not args.no_mlflow:
        metrics["mlflow"] = log_to_mlflow(
            inputs.train_info.get("mlflow_run_id"), metrics, bundle_dir, cfg.mlflow, profile
        )
    return metrics


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline.stages.export", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default="models/checkpoint")
    p.add_argument("--thresholds", default="models/thresholds.json")
    p.add_argument("--test-split", default="data/splits/test.parquet")
    p.add_argument(
        "--calibration-split",
        default="data/splits/valid.parquet",
        help="where the re-scoring margin is measured (export.rescore)",
    )
    p.add_argument(
        "--torch-logits",
        default="models/test_logits.npz",
        help="evaluate's PyTorch test logits, used when they match this checkpoint and window set ('' to rescore)",
    )
    p.add_argument("--bundle", default="models/bundle")
    p.add_argument(
        "--gates",
        default="metrics/gates.json",
        help="evaluate's gate verdict, recorded in bundle.json (absent: unknown)",
    )
    p.add_argument("--metrics", default="metrics/export.json")
    p.add_argument("--lock", default="dvc.lock", help="dvc.lock, for the data version recorded in the bundle")
    p.add_argument("--config-dir", default="configs")
    p.add_argument("--profile", default=None)
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads for parity scoring")
    p.add_argument("--no-mlflow", action="store_true", help="skip MLflow logging (tests)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    profile = args.profile or active_profile(Path(args.config_dir))
    cfg = section(ExportConfig, "export", "export", profile, args.config_dir)
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
    sys.exit(run_stage(main))
