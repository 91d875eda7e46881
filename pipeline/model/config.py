"""Typed params of the turn scorer's training (configs/train.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from serving.labels import MODEL_LABELS
from serving.window import WindowSpec


@dataclass(frozen=True)
class ModelConfig:
    base_model: str
    label_subset: list[str] | None

    def __post_init__(self) -> None:
        if not self.base_model:
            raise ValueError("base_model is empty")
        if self.label_subset is not None and (not self.label_subset or set(self.label_subset) - set(MODEL_LABELS)):
            raise ValueError(f"label_subset must be a non-empty subset of {list(MODEL_LABELS)}")


@dataclass(frozen=True)
class WindowConfig:
    max_turns: int
    max_tokens: int
    max_turn_tokens: int

    def spec(self) -> WindowSpec:
        return WindowSpec(self.max_turns, self.max_tokens, self.max_turn_tokens)

    def __post_init__(self) -> None:
        self.spec()  # WindowSpec's own checks


@dataclass(frozen=True)
class SamplingConfig:
    max_train_windows: int | None
    min_negative_share: float
    hard_negative_share: float
    max_valid_windows: int | None
    valid_min_negative_share: float
    valid_hard_negative_share: float
    context_swap: float
    context_swap_empty: float
    role_echo_redirects: int

    def __post_init__(self) -> None:
        for name in ("min_negative_share", "hard_negative_share", "valid_min_negative_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        for name in ("valid_hard_negative_share", "context_swap", "context_swap_empty"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.max_train_windows is not None and self.max_train_windows < 1:
            raise ValueError("max_train_windows must be positive or null")
        if self.role_echo_redirects < 0:
            raise ValueError("role_echo_redirects must be >= 0")


@dataclass(frozen=True)
class OptimConfig:
    seed: int
    epochs: int
    evals_per_epoch: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_ratio: float
    grad_clip: float
    pos_weight_cap: float
    patience: int
    select_on: Literal["valid_macro_f1", "valid_loss"]

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.evals_per_epoch < 1:
            raise ValueError("epochs, evals_per_epoch, batch_size and lr must be positive")


@dataclass(frozen=True)
class RuntimeConfig:
    num_threads: int
    eval_batch_size: int
    bucket_pool: int


@dataclass(frozen=True)
class TrainConfig:
    """Everything `train` reads: configs/train.yaml's sections."""

    model: ModelConfig
    window: WindowConfig
    sampling: SamplingConfig
    optim: OptimConfig
    runtime: RuntimeConfig
