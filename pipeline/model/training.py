"""Fine-tuning the turn scorer: windows, the training loop, early stopping on valid, the checkpoint.

Every turn is shown to the model through serving.window.WindowEncoder (as in production); the loss is
multi-label BCE with pos_weight, masked to the labels the turn's role can carry. On CPU, runs are seeded
and deterministic; under torchrun each process trains on its DistributedSampler shard (gloo on CPU, nccl +
bf16 autocast on GPU) and only rank 0 logs and saves.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.model.config import TrainConfig
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

log = logging.getLogger("pipeline.model.training")


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


def num_threads(configured: int) -> int:
    """torch threads: ESCALATION_GUARD_NUM_THREADS (an operational knob, like OMP_NUM_THREADS: on a shared
    2-core box one thread beats two fighting another process) else `runtime.num_threads`."""
    env = os.environ.get("ESCALATION_GUARD_NUM_THREADS")
    return max(1, int(env)) if env else max(1, configured)


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


@dataclass
class TrainingData:
    """The windows one run trains and early-stops on."""

    train: WindowSet
    train_total: int
    valid: WindowSet
    valid_idx: np.ndarray
    pos_weight: np.ndarray


def training_data(
    train_convs: Sequence[Conversation], valid_convs: Sequence[Conversation], encoder: WindowEncoder, cfg: TrainConfig
) -> TrainingData:
    """Windows of both splits; the training subsample with swapped contexts and role-echo windows."""
    samp, seed, subset = cfg.sampling, cfg.optim.seed, cfg.model.label_subset
    train_all = build_windows(train_convs, encoder, label_subset=subset)
    valid_all = build_windows(valid_convs, encoder, label_subset=subset)
    if len(train_all) == 0 or len(valid_all) == 0:
        raise ValueError(
            f"no scored windows (train {len(train_all)}, valid {len(valid_all)}): are the splits labelled?"
        )
    chosen = select_training_windows(
        train_all,
        samp.max_train_windows,
        seed,
        min_negative_share=samp.min_negative_share,
        hard_share=samp.hard_negative_share,
    )
    train_ws = swap_contexts(
        train_all.subset(chosen), encoder, samp.context_swap, seed + 2, empty_share=samp.context_swap_empty
    )
    if samp.role_echo_redirects > 0:
        echo = role_echo_windows(train_all, train_convs, encoder, samp.role_echo_redirects, seed + 3, subset)
        train_ws = concat_windows(train_ws, echo)
    valid_idx = select_training_windows(
        valid_all,
        samp.max_valid_windows,
        seed + 1,
        min_negative_share=samp.valid_min_negative_share,
        hard_share=samp.valid_hard_negative_share,
    )
    pw = pos_weight(train_ws, cfg.optim.pos_weight_cap)
    return TrainingData(train_ws, len(train_all), valid_all, valid_idx, pw)


def _masked_bce(logits, y, m, pw):
    import torch.nn.functional as F

    per = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pw, reduction="none") * m
    return per.sum() / m.sum().clamp(min=1.0)


def _valid_loss(model, ws: WindowSet, idx: np.ndarray, ctx: DistContext, pw, batch_size: int, pad_id: int):
    """Masked BCE and F1@0.5 on this rank's shard of the valid subsample, summed over ranks."""
    import torch
    import torch.distributed as dist

    from pipeline.model.modeling import batch_logits

    shard = idx[ctx.rank :: ctx.world]
    shard = shard[np.argsort(ws.lengths[shard], kind="stable")]
    loss_sum = torch.zeros(1, dtype=torch.float64)
    weight = torch.zeros(1, dtype=torch.float64)
    counts = torch.zeros(3, len(MODEL_LABELS), dtype=torch.float64)  # tp, fp, fn
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(shard), batch_size):
            logits, b = batch_logits(model, ws, shard[start : start + batch_size], pad_id, ctx.device)
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
    cfg: TrainConfig,
    *,
    ctx: DistContext | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train and return the best-on-valid model (in memory); saving is the caller's job."""
    import torch

    from pipeline.model.modeling import build_model

    ctx = ctx or DistContext(device=torch.device("cpu"))
    seed = cfg.optim.seed
    if ctx.device.type == "cpu":
        torch.set_num_threads(num_threads(cfg.runtime.num_threads))
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(seed)
    np.random.seed(seed)
    spec = cfg.window.spec()
    model, tokenizer = build_model(cfg.model.base_model, seed=seed)
    encoder = WindowEncoder(tokenizer, spec)
    data = training_data(train_convs, valid_convs, encoder, cfg)
    if ctx.is_main:
        log.info(
            "windows: train %d of %d (%d positive, %d hard negative), valid %d of %d; pos_weight %s",
            len(data.train),
            data.train_total,
            int(data.train.positive.sum()),
            int(data.train.hard.sum()),
            len(data.valid_idx),
            len(data.valid),
            dict(zip(MODEL_LABELS, np.round(data.pos_weight, 2).tolist(), strict=True)),
        )
    result = TrainResult(model, tokenizer, spec, train_windows=len(data.train), train_windows_total=data.train_total)
    result.pos_weight, result.train_set = data.pos_weight.tolist(), data.train
    _Loop(model, data, cfg, ctx, encoder.pad_id).run(result, on_epoch, progress)
    return result


class _Loop:
    """The optimiser, schedule and early stopping of one training run."""

    def __init__(self, model: Any, data: TrainingData, cfg: TrainConfig, ctx: DistContext, pad_id: int) -> None:
        import torch
        from torch.nn.parallel import DistributedDataParallel as DDP
        from torch.utils.data.distributed import DistributedSampler

        self.model, self.data, self.cfg, self.ctx, self.pad_id = model, data, cfg, ctx, pad_id
        opt = cfg.optim
        model.to(ctx.device)
        model.train()
        self.net = (
            DDP(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None) if ctx.world > 1 else model
        )
        self.pw = torch.tensor(data.pos_weight, device=ctx.device)
        norm = ("bias", "LayerNorm", "layer_norm")
        decay = [p for n, p in model.named_parameters() if not any(k in n for k in norm)]
        no_decay = [p for n, p in model.named_parameters() if any(k in n for k in norm)]
        # Fused AdamW on CPU too: one kernel per step instead of a loop over 100 tensors (~165 -> ~25 ms a step).
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": opt.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=opt.lr,
            **({"fused": True} if ctx.device.type in ("cuda", "cpu") else {}),
        )
        self.sampler = DistributedSampler(
            range(len(data.train)), num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=opt.seed
        )
        total = max(1, math.ceil(len(self.sampler) / opt.batch_size) * opt.epochs)
        warmup = int(total * opt.warmup_ratio)

        def lr_lambda(step: int) -> float:
            if step < warmup:
                return (step + 1) / max(1, warmup)
            return max(0.0, (total - step) / max(1, total - warmup))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda)
        self.best_state: dict | None = None
        self.bad_checks = self.checks = self.seen = 0
        self.train_time = 0.0

    def run(self, result: TrainResult, on_epoch: Callable[[dict[str, float]], None] | None, progress: bool) -> None:
        from tqdm import tqdm

        opt = self.cfg.optim
        for epoch in range(1, opt.epochs + 1):
            self.sampler.set_epoch(epoch)
            rng = np.random.default_rng(opt.seed * 1000 + epoch)
            lengths = self.data.train.lengths
            batches = length_buckets(
                list(self.sampler), lengths, opt.batch_size, rng, pool=self.cfg.runtime.bucket_pool
            )
            # Valid checks at evenly spaced points of the epoch, so 1 epoch still gives early stopping a choice.
            at = {max(1, round(len(batches) * k / opt.evals_per_epoch)) for k in range(1, opt.evals_per_epoch + 1)}
            show = progress and self.ctx.is_main
            bar = tqdm(batches, desc=f"epoch {epoch}/{opt.epochs}", disable=not show, mininterval=5.0)
            if self._epoch(epoch, bar, at, len(batches), result, on_epoch):
                break
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        result.train_seconds = self.train_time
        result.samples_per_s = self.seen / max(self.train_time, 1e-9)

    def _epoch(self, epoch: int, bar: Any, at: set[int], n_batches: int, result: TrainResult, on_epoch: Any) -> bool:
        """One pass over the batches; True when early stopping ends the run."""
        t0, loss_acc, n_acc = time.perf_counter(), 0.0, 0
        for step, idx in enumerate(bar, start=1):
            loss = self._step(idx)
            loss_acc += loss * len(idx)
            n_acc += len(idx)
            bar.set_postfix(loss=f"{loss_acc / max(n_acc, 1):.4f}", refresh=False)
            if step not in at:
                continue
            span = time.perf_counter() - t0
            row = self._check(epoch - 1 + step / n_batches, loss_acc / max(n_acc, 1), n_acc * self.ctx.world, span)
            result.history.append(row)
            if self.ctx.is_main and on_epoch:
                on_epoch(row)
            if self._stop(row, result):
                return True
            t0, loss_acc, n_acc = time.perf_counter(), 0.0, 0
        return False

    def _step(self, idx: list[int]) -> float:
        import torch

        from pipeline.model.modeling import batch_logits

        logits, b = batch_logits(self.net, self.data.train, idx, self.pad_id, self.ctx.device)
        loss = _masked_bce(logits, b["labels"].to(self.ctx.device), b["mask"].to(self.ctx.device), self.pw)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.item())

    def _check(self, epoch: float, train_loss: float, n_global: int, span: float) -> dict[str, float]:
        self.train_time += span
        self.seen += n_global
        self.checks += 1
        bs = self.cfg.runtime.eval_batch_size
        valid_loss, valid_f1 = _valid_loss(
            self.net, self.data.valid, self.data.valid_idx, self.ctx, self.pw, bs, self.pad_id
        )
        row = {
            "epoch": round(epoch, 3),
            "check": self.checks,
            "train_loss": train_loss,
            "valid_loss": valid_loss,
            "valid_macro_f1_at_0.5": float(np.mean(list(valid_f1.values()))) if valid_f1 else 0.0,
            "samples_per_s": n_global / max(span, 1e-9),
            "epoch_seconds": span,
            "lr": float(self.scheduler.get_last_lr()[0]),
            **{f"valid_f1_at_0.5.{k}": v for k, v in valid_f1.items()},
        }
        if self.ctx.is_main:
            log.info(
                "epoch %.2f: train loss %.4f, valid loss %.4f, valid macro-F1@0.5 %.3f, %.1f samples/s, %.0fs",
                row["epoch"], train_loss, valid_loss, row["valid_macro_f1_at_0.5"], row["samples_per_s"], span,
            )  # fmt: skip
        return row

    def _stop(self, row: Mapping[str, float], result: TrainResult) -> bool:
        """Keep the best checkpoint so far; True after `patience` checks without improvement.

        Selection on macro-F1 by default: valid loss on template-disjoint data is dominated by a few confident
        misses on unseen families (which temperature scaling fixes later), and picked a half-trained model."""
        opt = self.cfg.optim
        score = -row["valid_loss"] if opt.select_on == "valid_loss" else row["valid_macro_f1_at_0.5"]
        if score > result.best_score + 1e-6:
            result.best_score, result.best_epoch, self.bad_checks = score, row["epoch"], 0
            result.best_valid_loss = row["valid_loss"]
            last = self.checks >= opt.epochs * opt.evals_per_epoch
            self.best_state = None if last else copy.deepcopy(self.model.state_dict())
            return False
        self.bad_checks += 1
        if self.bad_checks >= opt.patience:
            if self.ctx.is_main:
                log.info("early stop: %s has not improved for %d check(s)", opt.select_on, self.bad_checks)
            return True
        return False


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
