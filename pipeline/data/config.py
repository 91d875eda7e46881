"""Typed params of the data stages (configs/data.yaml `prepare` and `split`); `sources` is checked by
pipeline/data/sources/base.py, one kind at a time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

SPLIT_NAMES = ("train", "valid", "test")


@dataclass(frozen=True)
class IngestConfig:
    """`sources`: each checked by kind when `ingest` reads it (pipeline/data/sources/base.py parse_sources)."""

    sources: list[dict[str, Any]]


@dataclass(frozen=True)
class PrepareConfig:
    max_turn_chars: int
    near_dup_threshold: float
    minhash_num_perm: int
    shingle_size: int

    def __post_init__(self) -> None:
        if self.max_turn_chars < 1 or self.minhash_num_perm < 1 or self.shingle_size < 1:
            raise ValueError("max_turn_chars, minhash_num_perm and shingle_size must be positive")
        if not 0 < self.near_dup_threshold <= 1:
            raise ValueError(f"near_dup_threshold must be in (0, 1], got {self.near_dup_threshold}")


@dataclass(frozen=True)
class SplitConfig:
    seed: int
    fractions: dict[str, float]
    template_disjoint: bool
    template_groups: dict[str, list[int]]
    convabuse: Literal["original", "random"]

    def __post_init__(self) -> None:
        if set(self.fractions) != set(SPLIT_NAMES) or any(v < 0 for v in self.fractions.values()):
            raise ValueError("fractions must map train, valid, test to numbers >= 0")
        if abs(sum(self.fractions.values()) - 1.0) > 1e-6:
            raise ValueError(f"fractions must sum to 1, got {sum(self.fractions.values())}")
        if set(self.template_groups) != set(SPLIT_NAMES):
            raise ValueError("template_groups must map train, valid, test to lists of group numbers")
        seen: dict[int, str] = {}
        for name, groups in self.template_groups.items():
            for g in groups:
                if g in seen:
                    raise ValueError(f"template_groups: group {g} is in both {seen[g]} and {name}")
                seen[g] = name


@dataclass(frozen=True)
class PartitionParams:
    """What `split` needs: its own section plus the near-duplicate settings `prepare` also uses."""

    split: SplitConfig
    prepare: PrepareConfig
