"""Typed params of export, verify and bench (configs/export.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class QuantizationConfig:
    per_channel: bool
    preoptimize: Literal["basic", "extended"] | None


@dataclass(frozen=True)
class SessionConfig:
    disabled_optimizers: list[str]


@dataclass(frozen=True)
class RescoreSettings:
    enabled: bool
    model: Literal["fp32"]
    quantile: float
    calibration_windows: int

    def __post_init__(self) -> None:
        if not 0 < self.quantile <= 1:
            raise ValueError(f"rescore.quantile must be in (0, 1], got {self.quantile}")


@dataclass(frozen=True)
class ParityConfig:
    batch_size: int
    int8_batch_size: int
    max_abs_logit_fp32: float
    min_served_decision_agreement: float
    enforce: bool


@dataclass(frozen=True)
class MlflowConfig:
    enabled: bool
    log_model: bool
    artifact_path: str


@dataclass(frozen=True)
class ExportConfig:
    opset: int
    quantization: QuantizationConfig
    session: SessionConfig
    rescore: RescoreSettings
    parity: ParityConfig
    mlflow: MlflowConfig


@dataclass(frozen=True)
class VerifyConfig:
    model: str
    enforce: bool
    mode: Literal["live", "batch"]
    workers: int
    batch_size: int
    tolerance: dict[str, float]


@dataclass(frozen=True)
class BenchConfig:
    token_targets: list[int]
    warmup: int
    iterations: int
    paired_iterations: int
    batch_size: int
    batch_rounds: int
    cold_start_runs: int
