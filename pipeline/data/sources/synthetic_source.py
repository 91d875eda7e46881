"""Adapter for kind `synthetic`: the seeded generator (pipeline/data/sources/synthetic), policy from configs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pipeline.common.config import ConfigError
from pipeline.data.sources.base import SourceSpec
from serving.policy import PolicyConfig


def read(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    """The generator's conversations, labelled by the policy that `ingest` passes in `spec.context`."""
    from pipeline.data.sources.synthetic import generate

    n, seed = spec.options["n_conversations"], spec.options["seed"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"source {spec.name!r}: n_conversations must be an integer >= 0, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"source {spec.name!r}: seed must be an integer, got {seed!r}")
    policy = spec.context.get("policy") or PolicyConfig()
    yield from generate(n, seed, policy)
