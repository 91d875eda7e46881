"""`train` stage: fine-tune the turn scorer on the train split, early-stopped on valid (pipeline/model/training.py).

    python -m pipeline.stages.train [--splits data/splits] [--out models/checkpoint] [--profile smoke]
    torchrun --nproc_per_node 2 -m pipeline.stages.train ...      # the same code under DDP

Writes models/checkpoint/ (HF weights, tokenizer.json, window.json, train_info.json), metrics/train.json and
the per-check history for `dvc plots`, and logs the run (params, per-check metrics, datasets) to MLflow.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.common.cli import run_stage
from pipeline.common.config import active_profile, flatten, load_config, typed
from pipeline.data.split_files import read_split, split_path
from pipeline.model.config import ModelConfig, OptimConfig, RuntimeConfig, SamplingConfig, TrainConfig, WindowConfig
from pipeline.model.training import DistContext, TrainResult, fit, init_distributed, save_checkpoint
from pipeline.model.windows import WindowSet, build_windows
from serving.labels import MODEL_LABELS
from serving.schema import Conversation
from serving.window import WindowEncoder

log = logging.getLogger("pipeline.stages.train")
#: The params this stage reads (dvc.yaml lists the same): configs/<file>.yaml sections.
PARAMS = {
    ("train", "model"): ModelConfig,
    ("train", "window"): WindowConfig,
    ("train", "sampling"): SamplingConfig,
    ("train", "optim"): OptimConfig,
    ("train", "runtime"): RuntimeConfig,
}


def train_config(profile: str | None) -> TrainConfig:
    return typed(TrainConfig, load_config("train", profile), "train")


def all_params(profile: str) -> dict[str, Any]:
    """Every config the pipeline reads (as merged for the profile), flattened: the run's MLflow params."""
    merged: dict[str, Any] = {"profile": profile}
    for name in ("data", "train", "eval", "policy", "gates"):
        if Path("configs", f"{name}.yaml").exists():
            merged[name] = load_config(name, profile)
    return flatten(merged)


def _dataset_frame(convs: Sequence[Conversation], ws: WindowSet):
    import pandas as pd

    return pd.DataFrame(
        {
            "conversation_id": [convs[i].id for i in ws.conv_index],
            "turn": ws.turn_index,
            "role": ws.roles,
            "category": ws.categories,
            "text": [convs[c].turns[t].text for c, t in zip(ws.conv_index, ws.turn_index, strict=True)],
            "labels": [",".join(convs[c].turns[t].labels) for c, t in zip(ws.conv_index, ws.turn_index, strict=True)],
            "tokens": ws.lengths,
        }
    )


def start_run(profile: str, cfg: TrainConfig, data_version: str, world: int, device: str):
    """The MLflow run this training logs to (evaluate and export resume it)."""
    import os

    from pipeline.common import tracking

    tags = {
        "git_commit": tracking.git_commit(),
        "data_version": data_version,
        "profile": profile,
        "base_model": cfg.model.base_model,
        "world_size": str(world),
        "device": device,
        "stage": "train",
    }
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    run = tracking.start_or_resume_run(run_name=f"train-{profile}-{tracking.git_commit(short=True)}", tags=tags)
    run = run.__enter__()
    tracking.log_params(all_params(profile))
    return run


def write_outputs(args: argparse.Namespace, result: TrainResult, metrics: dict[str, Any]) -> None:
    Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
    Path(args.metrics).write_text(json.dumps(metrics, indent=2) + "\n")
    hist = Path(args.history)
    hist.parent.mkdir(parents=True, exist_ok=True)
    keys = ["epoch", "train_loss", "valid_loss", "valid_macro_f1_at_0.5", "samples_per_s"]
    rows = "".join(",".join(f"{r[k]:.6g}" for k in keys) + "\n" for r in result.history)
    hist.write_text(",".join(keys) + "\n" + rows)


def log_datasets(
    args: argparse.Namespace,
    profile: str,
    result: TrainResult,
    valid: Sequence[Conversation],
    train: Sequence[Conversation],
    info: dict,
) -> None:
    import mlflow

    from pipeline.common import tracking

    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")
    for name, convs, ws, context in (
        ("train", train, result.train_set, "training"),
        ("valid", valid, build_windows(valid, WindowEncoder(result.tokenizer, result.spec)), "validation"),
    ):
        ds = mlflow.data.from_pandas(
            _dataset_frame(convs, ws), source=str(split_path(args.splits, name)), name=f"{name}-windows-{profile}"
        )
        tracking.retry(mlflow.log_input, ds, context=context)
    tracking.retry(mlflow.log_dict, info, "train_info.json")


def _data_version(splits: str) -> str:
    """The DVC data version of the splits, or their content digest when DVC does not track them."""
    from pipeline.common import tracking

    data_version = tracking.data_version()
    if data_version == "untracked":
        data_version = "md5:" + tracking.dir_digest(splits)
    return data_version


def _fit_closing_run(
    train_convs: Sequence[Conversation],
    valid_convs: Sequence[Conversation],
    cfg: TrainConfig,
    ctx: DistContext,
    run: Any,
) -> TrainResult:
    """`fit`, logging each check to the run and ending the run KILLED/FAILED if training does not finish."""
    from pipeline.common import tracking

    def on_epoch(row: dict[str, float]) -> None:
        if run is not None:
            tracking.log_metrics({k: v for k, v in row.items() if k != "check"}, step=int(row["check"]))

    def on_term(signum, frame):  # `kill`/DVC interrupt: unwind so the MLflow run is closed, not left RUNNING
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        return fit(train_convs, valid_convs, cfg, ctx=ctx, on_epoch=on_epoch)
    except BaseException as exc:
        if run is not None:
            import mlflow

            status = "KILLED" if isinstance(exc, KeyboardInterrupt | SystemExit) else "FAILED"
            tracking.retry(mlflow.end_run, status=status)
        raise


def _train_info(
    run: Any, cfg: TrainConfig, data_version: str, profile: str, result: TrainResult, ctx: DistContext
) -> dict[str, Any]:
    """The checkpoint's train_info.json (also logged to MLflow): where the weights came from."""
    from pipeline.common import tracking

    return {
        "mlflow_run_id": run.info.run_id if run is not None else None,
        "base_model": cfg.model.base_model,
        "data_version": data_version,
        "profile": profile,
        "git_commit": tracking.git_commit(),
        "seed": cfg.optim.seed,
        "label_subset": cfg.model.label_subset,
        "labels": list(MODEL_LABELS),
        "best_epoch": result.best_epoch,
        "train_windows": result.train_windows,
        "world_size": ctx.world,
    }


def _train_metrics(result: TrainResult, ctx: DistContext, wall0: float) -> dict[str, Any]:
    """metrics/train.json: the run's size, speed and best check (wall time counted up to this call)."""
    return {
        "train_windows": result.train_windows,
        "train_windows_total": result.train_windows_total,
        "epochs_run": math.ceil(result.history[-1]["epoch"]) if result.history else 0,
        "valid_checks": len(result.history),
        "best_epoch": result.best_epoch,
        "best_valid_loss": result.best_valid_loss,
        "samples_per_s": result.samples_per_s,
        "train_seconds": result.train_seconds,
        "wall_seconds": time.perf_counter() - wall0,
        "world_size": ctx.world,
        "device": str(ctx.device),
    }


def _finish_run(
    args: argparse.Namespace,
    profile: str,
    result: TrainResult,
    valid_convs: Sequence[Conversation],
    train_convs: Sequence[Conversation],
    info: dict,
    metrics: dict[str, Any],
) -> None:
    """Log the final numeric metrics and the datasets to the MLflow run, then end it."""
    import mlflow

    from pipeline.common import tracking

    tracking.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)})
    log_datasets(args, profile, result, valid_convs, train_convs, info)
    tracking.retry(mlflow.end_run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="data/splits", help="folder with train/valid parquet splits")
    parser.add_argument("--out", default="models/checkpoint", help="checkpoint folder to write")
    parser.add_argument("--metrics", default="metrics/train.json")
    parser.add_argument("--history", default="plots/data/train_history.csv", help="per-check metrics (DVC plot)")
    parser.add_argument("--profile", default=None, help="override configs/profile.yaml")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    args = parser.parse_args(argv)
    profile = args.profile or active_profile()
    cfg = train_config(profile)
    ctx = init_distributed()
    wall0 = time.perf_counter()
    train_convs = read_split(split_path(args.splits, "train"))
    valid_convs = read_split(split_path(args.splits, "valid"))
    data_version = _data_version(args.splits)
    run = (
        start_run(profile, cfg, data_version, ctx.world, str(ctx.device))
        if ctx.is_main and not args.no_mlflow
        else None
    )
    result = _fit_closing_run(train_convs, valid_convs, cfg, ctx, run)
    if ctx.is_main:
        info = _train_info(run, cfg, data_version, profile, result, ctx)
        save_checkpoint(result, Path(args.out), info)
        metrics = _train_metrics(result, ctx, wall0)
        write_outputs(args, result, metrics)
        log.info("saved %s (%.1f samples/s, best epoch %.2f)", args.out, result.samples_per_s, result.best_epoch)
        if run is not None:
            _finish_run(args, profile, result, valid_convs, train_convs, info, metrics)
    if ctx.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
