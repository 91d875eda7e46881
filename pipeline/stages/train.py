"""`train` stage: fine-tune the turn scorer on the train split, early-stopped on valid.

    python -m pipeline.stages.train [--splits data/splits] [--out models/checkpoint] [--profile smoke]
    torchrun --nproc_per_node 2 -m pipeline.stages.train ...      # the same code under DDP

Every turn is shown to the model through serving.window.WindowEncoder (as in production); the loss is
multi-label BCE with pos_weight, masked to the labels the turn's role can carry. On CPU, runs are seeded
and deterministic; under torchrun each process trains on its DistributedSampler shard (gloo on CPU, nccl +
bf16 autocast on GPU) and only rank 0 logs and saves.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import shutil
import signal
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.config import ConfigError, active_profile, flatten, load_config
from pipeline.data.split_files import read_split, split_path
from pipeline.model.windows import (
    WindowSet,
    build_windows,
    concat_windows,
    length_buckets,
    pos_weight,
    role_echo_windows,
    select_training_windows,
    swap_contexts,
)
from serving.labels import MODEL_LABELS
from serving.schema import Conversation
from serving.window import WindowEncoder, WindowSpec

log = logging.getLogger("pipeline.stages.train")


@dataclass
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistContext:
    """Join the torchrun process group if WORLD_SIZE > 1 (gloo on CPU, nccl on GPU)."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if cuda:
        torch.cuda.set_device(local)
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    return DistContext(rank=rank, world=world, local_rank=local, device=device)


def check_config(cfg: Mapping[str, Any]) -> None:
    """Fail early with one clear line on a config the trainer cannot use."""
    try:
        WindowSpec.from_dict(cfg["window"])
        opt, samp = cfg["optim"], cfg["sampling"]
        if int(opt["epochs"]) < 1 or int(opt["batch_size"]) < 1 or float(opt["lr"]) <= 0:
            raise ValueError("optim.epochs, optim.batch_size and optim.lr must be positive")
        if opt.get("select_on", "valid_macro_f1") not in ("valid_loss", "valid_macro_f1"):
            raise ValueError("optim.select_on must be valid_loss or valid_macro_f1")
        if samp.get("max_train_windows") is not None and int(samp["max_train_windows"]) < 1:
            raise ValueError("sampling.max_train_windows must be positive or null")
        scale = opt.get("pos_weight_scale") or {}
        if not isinstance(scale, Mapping) or set(scale) - set(MODEL_LABELS):
            raise ValueError(f"optim.pos_weight_scale must map labels of {list(MODEL_LABELS)} to multipliers")
        if any(float(v) <= 0 for v in scale.values()):
            raise ValueError("optim.pos_weight_scale multipliers must be positive")
        for key in ("context_swap", "context_swap_empty"):
            if not 0.0 <= float(samp.get(key, 0.0)) <= 1.0:
                raise ValueError(f"sampling.{key} must be in [0, 1]")
        subset = cfg["model"].get("label_subset")
        if subset is not None and (not subset or set(subset) - set(MODEL_LABELS)):
            raise ValueError(f"model.label_subset must be a non-empty subset of {list(MODEL_LABELS)}")
        if not cfg["model"].get("base_model"):
            raise ValueError("model.base_model is empty")
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"configs/train.yaml: {exc}") from None


def num_threads(runtime: Mapping[str, Any]) -> int:
    """torch threads: ESCALATION_GUARD_NUM_THREADS (an operational knob, like OMP_NUM_THREADS: on a shared
    2-core box one thread beats two fighting another process) else `runtime.num_threads`."""
    env = os.environ.get("ESCALATION_GUARD_NUM_THREADS")
    return max(1, int(env)) if env else max(1, int(runtime.get("num_threads", 2)))


@dataclass
class TrainResult:
    model: Any
    tokenizer: Any
    spec: WindowSpec
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: float = 0
    best_valid_loss: float = float("inf")
    #: The model-selection score (higher is better): -valid loss or valid macro-F1@0.5 (`optim.select_on`).
    best_score: float = float("-inf")
    train_windows: int = 0
    train_windows_total: int = 0
    samples_per_s: float = 0.0
    train_seconds: float = 0.0
    pos_weight: list[float] = field(default_factory=list)
    train_set: WindowSet | None = None


def _masked_bce(logits, y, m, pw):
    import torch.nn.functional as F

    per = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pw, reduction="none") * m
    return per.sum() / m.sum().clamp(min=1.0)


def _valid_loss(model, ws: WindowSet, idx: np.ndarray, ctx: DistContext, pw, batch_size: int, pad_id: int):
    """Masked BCE and F1@0.5 on this rank's shard of the valid subsample, summed over ranks."""
    import torch
    import torch.distributed as dist

    from pipeline.model.modeling import collate

    shard = idx[ctx.rank :: ctx.world]
    shard = shard[np.argsort(ws.lengths[shard], kind="stable")]
    loss_sum = torch.zeros(1, dtype=torch.float64)
    weight = torch.zeros(1, dtype=torch.float64)
    counts = torch.zeros(3, len(MODEL_LABELS), dtype=torch.float64)  # tp, fp, fn
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(shard), batch_size):
            b = collate(ws, shard[start : start + batch_size], pad_id)
            with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=ctx.device.type == "cuda"):
                logits = model(
                    input_ids=b["input_ids"].to(ctx.device),
                    attention_mask=b["attention_mask"].to(ctx.device),
                    token_type_ids=b["token_type_ids"].to(ctx.device),
                ).logits.float()
            y, m = b["labels"].to(ctx.device), b["mask"].to(ctx.device)
            per = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, pos_weight=pw, reduction="none")
            loss_sum += (per * m).sum().double().cpu()
            weight += m.sum().double().cpu()
            pred = (logits >= 0).float() * m
            counts[0] += (pred * y).sum(0).double().cpu()
            counts[1] += (pred * (1 - y)).sum(0).double().cpu()
            counts[2] += ((1 - pred) * y * m).sum(0).double().cpu()
    model.train()
    if ctx.world > 1:
        for t in (loss_sum, weight, counts):
            dist.all_reduce(t)
    tp, fp, fn = counts.numpy()
    f1 = np.where(tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), np.nan)
    valid_f1 = {name: float(v) for name, v in zip(MODEL_LABELS, f1, strict=True) if not np.isnan(v)}
    return float(loss_sum.item() / max(weight.item(), 1.0)), valid_f1


def fit(
    train_convs: Sequence[Conversation],
    valid_convs: Sequence[Conversation],
    cfg: Mapping[str, Any],
    *,
    ctx: DistContext | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train and return the best-on-valid model (in memory); saving is the caller's job."""
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data.distributed import DistributedSampler
    from tqdm import tqdm

    from pipeline.model.modeling import build_model, collate

    ctx = ctx or DistContext(device=torch.device("cpu"))
    opt_cfg, samp, rt = cfg["optim"], cfg["sampling"], cfg["runtime"]
    seed = int(opt_cfg["seed"])
    if ctx.device.type == "cpu":
        torch.set_num_threads(num_threads(rt))
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(seed)
    np.random.seed(seed)

    spec = WindowSpec.from_dict(cfg["window"])
    model, tokenizer = build_model(cfg["model"]["base_model"], seed=seed, num_layers=cfg["model"].get("num_layers"))
    encoder = WindowEncoder(tokenizer, spec)
    subset = cfg["model"].get("label_subset")
    train_all = build_windows(train_convs, encoder, label_subset=subset)
    valid_all = build_windows(valid_convs, encoder, label_subset=subset)
    if len(train_all) == 0 or len(valid_all) == 0:
        raise ValueError(
            f"no scored windows (train {len(train_all)}, valid {len(valid_all)}): are the splits labelled?"
        )
    chosen = select_training_windows(
        train_all,
        samp.get("max_train_windows"),
        seed,
        min_negative_share=float(samp.get("min_negative_share", 0.35)),
        hard_share=float(samp.get("hard_negative_share", 0.6)),
        min_label_windows=int(samp.get("min_label_windows", 0)),
    )
    train_ws = swap_contexts(
        train_all.subset(chosen),
        encoder,
        float(samp.get("context_swap", 0.0)),
        seed + 2,
        empty_share=float(samp.get("context_swap_empty", 0.2)),
    )
    n_echo = int(samp.get("role_echo_redirects", 0))
    if n_echo > 0:
        echo = role_echo_windows(train_all, train_convs, encoder, n_echo, seed + 3, subset)
        train_ws = concat_windows(train_ws, echo)
    valid_idx = select_training_windows(valid_all, samp.get("max_valid_windows"), seed + 1)
    pw_np = pos_weight(train_ws, float(opt_cfg.get("pos_weight_cap", 20.0)), opt_cfg.get("pos_weight_scale"))
    if ctx.is_main:
        log.info(
            "windows: train %d of %d (%d positive, %d hard negative), valid %d of %d; pos_weight %s",
            len(train_ws),
            len(train_all),
            int(train_ws.positive.sum()),
            int(train_ws.hard.sum()),
            len(valid_idx),
            len(valid_all),
            dict(zip(MODEL_LABELS, np.round(pw_np, 2).tolist(), strict=True)),
        )

    model.to(ctx.device)
    model.train()
    net = DDP(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None) if ctx.world > 1 else model
    pw = torch.tensor(pw_np, device=ctx.device)
    decay = [p for n, p in model.named_parameters() if not any(k in n for k in ("bias", "LayerNorm", "layer_norm"))]
    no_decay = [p for n, p in model.named_parameters() if any(k in n for k in ("bias", "LayerNorm", "layer_norm"))]
    # Fused AdamW on CPU too: one kernel per step instead of a loop over 100 tensors. On this 2-core CPU the
    # step fell from ~165 to ~25 ms (of ~1.1 s per batch of 16); the update rule is the same.
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": float(opt_cfg.get("weight_decay", 0.0))},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=float(opt_cfg["lr"]),
        **({"fused": True} if ctx.device.type in ("cuda", "cpu") else {}),
    )
    batch_size = int(opt_cfg["batch_size"])
    epochs = int(opt_cfg["epochs"])
    sampler = DistributedSampler(range(len(train_ws)), num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=seed)
    steps_per_epoch = math.ceil(len(sampler) / batch_size)
    total_steps = max(1, steps_per_epoch * epochs)
    warmup = int(total_steps * float(opt_cfg.get("warmup_ratio", 0.0)))

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    lengths = train_ws.lengths
    pad_id = encoder.pad_id
    clip = float(opt_cfg.get("grad_clip", 0.0) or 0.0)
    patience = int(opt_cfg.get("patience", 1))
    # Valid loss on template-disjoint data is dominated by a few confident misses on unseen families (which
    # temperature scaling fixes later); macro-F1 tracks what thresholds can use. We measured the loss picking a
    # half-trained model whose F1 was lower.
    select_on = str(opt_cfg.get("select_on", "valid_macro_f1"))
    eval_bs = int(rt.get("eval_batch_size", 64))

    result = TrainResult(
        model=model, tokenizer=tokenizer, spec=spec, train_windows=len(train_ws), train_windows_total=len(train_all)
    )
    result.pos_weight = pw_np.tolist()
    result.train_set = train_ws
    best_state = None
    bad_checks = 0
    seen = 0
    train_time = 0.0
    evals = max(1, int(opt_cfg.get("evals_per_epoch", 1)))
    checks = 0
    stop = False
    last_check = epochs * evals
    for epoch in range(1, epochs + 1):
        sampler.set_epoch(epoch)
        rng = np.random.default_rng(seed * 1000 + epoch)
        batches = length_buckets(list(sampler), lengths, batch_size, rng, pool=int(rt.get("bucket_pool", 50)))
        # Valid checks at evenly spaced points of the epoch: with 1 epoch over many distinct windows (better
        # than 2 over half as many on template-disjoint data) early stopping still has something to choose.
        at = {max(1, round(len(batches) * k / evals)) for k in range(1, evals + 1)}
        t0 = time.perf_counter()
        loss_acc, n_acc = 0.0, 0
        bar = tqdm(batches, desc=f"epoch {epoch}/{epochs}", disable=not (progress and ctx.is_main), mininterval=5.0)
        for step, idx in enumerate(bar, start=1):
            b = collate(train_ws, idx, pad_id)
            with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=ctx.device.type == "cuda"):
                logits = net(
                    input_ids=b["input_ids"].to(ctx.device),
                    attention_mask=b["attention_mask"].to(ctx.device),
                    token_type_ids=b["token_type_ids"].to(ctx.device),
                ).logits.float()
            loss = _masked_bce(logits, b["labels"].to(ctx.device), b["mask"].to(ctx.device), pw)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            scheduler.step()
            loss_acc += float(loss.item()) * len(idx)
            n_acc += len(idx)
            bar.set_postfix(loss=f"{loss_acc / max(n_acc, 1):.4f}", refresh=False)
            if step not in at:
                continue
            span = time.perf_counter() - t0
            train_time += span
            n_global = n_acc * ctx.world
            seen += n_global
            checks += 1
            valid_loss, valid_f1 = _valid_loss(net, valid_all, valid_idx, ctx, pw, eval_bs, pad_id)
            row = {
                "epoch": round(epoch - 1 + step / len(batches), 3),
                "check": checks,
                "train_loss": loss_acc / max(n_acc, 1),
                "valid_loss": valid_loss,
                "valid_macro_f1_at_0.5": float(np.mean(list(valid_f1.values()))) if valid_f1 else 0.0,
                "samples_per_s": n_global / max(span, 1e-9),
                "epoch_seconds": span,
                "lr": float(scheduler.get_last_lr()[0]),
                **{f"valid_f1_at_0.5.{k}": v for k, v in valid_f1.items()},
            }
            result.history.append(row)
            if ctx.is_main:
                log.info(
                    "epoch %.2f: train loss %.4f, valid loss %.4f, valid macro-F1@0.5 %.3f, %.1f samples/s, %.0fs",
                    row["epoch"],
                    row["train_loss"],
                    valid_loss,
                    row["valid_macro_f1_at_0.5"],
                    row["samples_per_s"],
                    span,
                )
                if on_epoch:
                    on_epoch(row)
            score = -valid_loss if select_on == "valid_loss" else row["valid_macro_f1_at_0.5"]
            if score > result.best_score + 1e-6:
                result.best_score, result.best_epoch, bad_checks = score, row["epoch"], 0
                result.best_valid_loss = valid_loss
                best_state = copy.deepcopy(model.state_dict()) if checks < last_check else None
            else:
                bad_checks += 1
                if bad_checks >= patience:
                    if ctx.is_main:
                        log.info("early stop: %s has not improved for %d check(s)", select_on, bad_checks)
                    stop = True
                    break
            loss_acc, n_acc = 0.0, 0
            t0 = time.perf_counter()
        if stop:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.train_seconds = train_time
    result.samples_per_s = seen / max(train_time, 1e-9)
    return result


def save_checkpoint(result: TrainResult, out: Path, info: Mapping[str, Any]) -> None:
    """HF save_pretrained + tokenizer.json + window.json + train_info.json (the export stage's input)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model = result.model
    model.config.problem_type = "multi_label_classification"
    model.save_pretrained(str(out))
    result.tokenizer.save(str(out / "tokenizer.json"))
    (out / "window.json").write_text(json.dumps(result.spec.to_dict(), indent=2) + "\n")
    (out / "train_info.json").write_text(json.dumps(dict(info), indent=2, sort_keys=True) + "\n")


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="data/splits", help="folder with train/valid parquet splits")
    parser.add_argument("--out", default="models/checkpoint", help="checkpoint folder to write")
    parser.add_argument("--metrics", default="metrics/train.json")
    parser.add_argument("--history", default="plots/data/train_history.csv", help="per-epoch metrics (DVC plot)")
    parser.add_argument("--profile", default=None, help="override configs/profile.yaml")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    profile = args.profile or active_profile()
    cfg = load_config("train", profile)
    check_config(cfg)
    ctx = init_distributed()
    wall0 = time.perf_counter()
    train_convs = read_split(split_path(args.splits, "train"))
    valid_convs = read_split(split_path(args.splits, "valid"))

    from pipeline.common import tracking

    run = None
    data_version = tracking.data_version()
    if data_version == "untracked":
        data_version = "md5:" + tracking.dir_digest(args.splits)
    if ctx.is_main and not args.no_mlflow:
        tags = {
            "git_commit": tracking.git_commit(),
            "data_version": data_version,
            "profile": profile,
            "base_model": cfg["model"]["base_model"],
            "world_size": str(ctx.world),
            "device": str(ctx.device),
            "stage": "train",
        }
        if os.environ.get("DVC_EXP_NAME"):
            tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
        run = tracking.start_or_resume_run(
            run_name=f"train-{profile}-{tracking.git_commit(short=True)}", tags=tags
        ).__enter__()
        tracking.log_params(all_params(profile))

    def on_epoch(row: dict[str, float]) -> None:
        if run is not None:
            tracking.log_metrics({k: v for k, v in row.items() if k != "check"}, step=int(row["check"]))

    def on_term(signum, frame):  # `kill`/DVC interrupt: unwind so the MLflow run is closed, not left RUNNING
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        result = fit(train_convs, valid_convs, cfg, ctx=ctx, on_epoch=on_epoch)
    except BaseException as exc:
        if run is not None:
            import mlflow

            status = "KILLED" if isinstance(exc, KeyboardInterrupt | SystemExit) else "FAILED"
            tracking.retry(mlflow.end_run, status=status)
        if isinstance(exc, ValueError):
            raise ConfigError(str(exc)) from None
        raise

    if ctx.is_main:
        info = {
            "mlflow_run_id": run.info.run_id if run is not None else None,
            "base_model": cfg["model"]["base_model"],
            "data_version": data_version,
            "profile": profile,
            "git_commit": tracking.git_commit(),
            "seed": int(cfg["optim"]["seed"]),
            "label_subset": cfg["model"].get("label_subset"),
            "labels": list(MODEL_LABELS),
            "best_epoch": result.best_epoch,
            "train_windows": result.train_windows,
            "world_size": ctx.world,
        }
        save_checkpoint(result, Path(args.out), info)
        metrics = {
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
        Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
        Path(args.metrics).write_text(json.dumps(metrics, indent=2) + "\n")
        hist = Path(args.history)
        hist.parent.mkdir(parents=True, exist_ok=True)
        keys = ["epoch", "train_loss", "valid_loss", "valid_macro_f1_at_0.5", "samples_per_s"]
        hist.write_text(
            ",".join(keys) + "\n" + "".join(",".join(f"{r[k]:.6g}" for k in keys) + "\n" for r in result.history)
        )
        log.info("saved %s (%.1f samples/s, best epoch %.2f)", args.out, result.samples_per_s, result.best_epoch)
        if run is not None:
            import mlflow

            tracking.log_metrics(
                {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            )
            warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")
            frame = _dataset_frame(train_convs, result.train_set)
            ds = mlflow.data.from_pandas(
                frame, source=str(split_path(args.splits, "train")), name=f"train-windows-{profile}"
            )
            tracking.retry(mlflow.log_input, ds, context="training")
            vwin = build_windows(valid_convs, WindowEncoder(result.tokenizer, result.spec))
            vds = mlflow.data.from_pandas(
                _dataset_frame(valid_convs, vwin),
                source=str(split_path(args.splits, "valid")),
                name=f"valid-windows-{profile}",
            )
            tracking.retry(mlflow.log_input, vds, context="validation")
            tracking.retry(mlflow.log_dict, info, "train_info.json")
            tracking.retry(mlflow.end_run)
    if ctx.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
