"""`baseline` stage: the bars the transformer must clear, on the same windows and labels.

    python -m pipeline.stages.baseline [--splits data/splits] [--out metrics/baseline.json] [--profile smoke]

1. TF-IDF + logistic regression per label over the same turns the transformer sees (the scored turn,
   word and character n-grams, plus its context window as a separate bag of words), thresholds chosen on
   valid by F1, scored on test.
2. `alt-profanity-check` used zero-shot for `abuse` on the scored user turn: what many teams would pick
   instead of training anything. Reported at its own 0.5 cut-off and at a cut-off tuned on valid.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.cli import run_stage
from pipeline.common.config import active_profile, section
from pipeline.data.split_files import read_split, split_path
from pipeline.evaluation.config import BaselineConfig
from pipeline.evaluation.turn_metrics import best_f1_threshold, label_metrics, macro_f1, per_label
from pipeline.model.config import ModelConfig, WindowConfig
from pipeline.model.windows import WindowSet, build_windows, window_texts
from serving.labels import MODEL_LABELS
from serving.schema import Conversation
from serving.window import WindowEncoder

log = logging.getLogger("pipeline.stages.baseline")
#: The params this stage reads (dvc.yaml lists the same): (configs/<file>.yaml, section) -> its reader.
PARAMS = {("eval", "baseline"): BaselineConfig, ("train", "model"): ModelConfig, ("train", "window"): WindowConfig}


class TfidfBaseline:
    """One vectoriser set, one logistic regression per label (trained where the label applies)."""

    def __init__(self, cfg: BaselineConfig) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.cfg = cfg
        max_f = cfg.max_features
        ngram = (1, cfg.ngram_max)
        self.target_words = TfidfVectorizer(ngram_range=ngram, max_features=max_f, sublinear_tf=True, min_df=1)
        self.context_words = TfidfVectorizer(ngram_range=(1, 1), max_features=max_f // 2, sublinear_tf=True)
        self.target_chars = (
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), max_features=max_f, sublinear_tf=True)
            if cfg.char_ngrams
            else None
        )
        self.models: dict[str, Any] = {}

    def _features(self, contexts: Sequence[str], targets: Sequence[str], fit: bool):
        from scipy.sparse import hstack

        def run(vec, texts):
            return vec.fit_transform(texts) if fit else vec.transform(texts)

        parts = [run(self.target_words, targets), 0.5 * run(self.context_words, [c or "" for c in contexts])]
        if self.target_chars is not None:
            parts.append(run(self.target_chars, targets))
        return hstack(parts).tocsr()

    def fit(self, contexts: Sequence[str], targets: Sequence[str], ws: WindowSet) -> TfidfBaseline:
        from sklearn.linear_model import LogisticRegression

        x = self._features(contexts, targets, fit=True)
        for j, name in enumerate(MODEL_LABELS):
            rows = ws.mask[:, j] > 0
            y = ws.labels[rows, j]
            if not rows.any() or y.min() == y.max():
                continue
            clf = LogisticRegression(C=self.cfg.C, class_weight="balanced", max_iter=2000)
            clf.fit(x[rows], y.astype(int))
            self.models[name] = clf
        return self

    def predict_proba(self, contexts: Sequence[str], targets: Sequence[str]) -> np.ndarray:
        x = self._features(contexts, targets, fit=False)
        out = np.zeros((x.shape[0], len(MODEL_LABELS)), dtype=np.float64)
        for j, name in enumerate(MODEL_LABELS):
            if name in self.models:
                out[:, j] = self.models[name].predict_proba(x)[:, 1]
        return out


def profanity_scores(texts: Sequence[str]) -> np.ndarray:
    """alt-profanity-check's probability per text (its pickled sklearn model warns on newer sklearn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from profanity_check import predict_prob

        return np.asarray(predict_prob(list(texts)), dtype=np.float64) if texts else np.zeros(0)


def raw_turn_texts(conversations: Sequence[Conversation], ws: WindowSet) -> list[str]:
    return [conversations[int(c)].turns[int(t)].text for c, t in zip(ws.conv_index, ws.turn_index, strict=True)]


def profanity_metrics(
    valid_texts: Sequence[str], y_valid: np.ndarray, test_texts: Sequence[str], y_test: np.ndarray
) -> dict[str, Any]:
    """Zero-shot abuse metrics: at the package's own 0.5 cut-off, and at a cut-off tuned on valid."""
    pv, pt = profanity_scores(valid_texts), profanity_scores(test_texts)
    tuned, _ = best_f1_threshold(pv, y_valid) if len(pv) else (0.5, 0.0)
    return {
        "zero_shot": label_metrics(pt, y_test, 0.5),
        "tuned_on_valid": label_metrics(pt, y_test, tuned),
    }


def abuse_rows(ws: WindowSet) -> np.ndarray:
    j = MODEL_LABELS.index("abuse")
    return np.flatnonzero(ws.mask[:, j] > 0)


def run_baseline(
    train: Sequence[Conversation],
    valid: Sequence[Conversation],
    test: Sequence[Conversation],
    encoder: WindowEncoder,
    cfg: BaselineConfig,
    label_subset: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Fit on train, threshold on valid, score on test; returns the metrics dict written to baseline.json."""
    t0 = time.perf_counter()
    sets = {
        name: build_windows(convs, encoder, label_subset=label_subset)
        for name, convs in (("train", train), ("valid", valid), ("test", test))
    }
    texts = {
        name: window_texts(convs, sets[name], encoder.spec.max_turns)
        for name, convs in (("train", train), ("valid", valid), ("test", test))
    }
    model = TfidfBaseline(cfg).fit(*texts["train"], sets["train"])
    pv = model.predict_proba(*texts["valid"])
    pt = model.predict_proba(*texts["test"])
    thresholds = {}
    for j, name in enumerate(MODEL_LABELS):
        rows = sets["valid"].mask[:, j] > 0
        thresholds[name] = best_f1_threshold(pv[rows, j], sets["valid"].labels[rows, j])[0] if rows.any() else 0.5
    tf_metrics = per_label(pt, sets["test"].labels, sets["test"].mask, thresholds)
    out: dict[str, Any] = {
        "tfidf_lr": {"per_label": tf_metrics, "macro_f1": macro_f1(tf_metrics), "thresholds": thresholds},
        "macro_f1": macro_f1(tf_metrics),
        "windows": {k: len(v) for k, v in sets.items()},
    }
    rv, rt = abuse_rows(sets["valid"]), abuse_rows(sets["test"])
    if len(rt):
        j = MODEL_LABELS.index("abuse")
        out["profanity_check"] = profanity_metrics(
            [raw_turn_texts(valid, sets["valid"])[i] for i in rv],
            sets["valid"].labels[rv, j],
            [raw_turn_texts(test, sets["test"])[i] for i in rt],
            sets["test"].labels[rt, j],
        )
    out["seconds"] = time.perf_counter() - t0
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="data/splits")
    parser.add_argument("--out", default="metrics/baseline.json")
    parser.add_argument("--profile", default=None, help="override configs/profile.yaml")
    args = parser.parse_args(argv)
    profile = args.profile or active_profile()
    cfg = section(BaselineConfig, "eval", "baseline", profile)
    model = section(ModelConfig, "train", "model", profile)
    window = section(WindowConfig, "train", "window", profile)
    from pipeline.model.modeling import resolve_base_model

    encoder = WindowEncoder.from_file(str(resolve_base_model(model.base_model).tokenizer_file), window.spec())
    splits = {name: read_split(split_path(args.splits, name)) for name in ("train", "valid", "test")}
    result = run_baseline(splits["train"], splits["valid"], splits["test"], encoder, cfg, model.label_subset)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    pc = result.get("profanity_check", {}).get("zero_shot", {})
    log.info(
        "TF-IDF+LR test macro-F1 %.3f (%s); alt-profanity-check abuse F1 %s; %.1fs",
        result["macro_f1"],
        ", ".join(f"{k} {v['f1']:.3f}" for k, v in result["tfidf_lr"]["per_label"].items()),
        f"{pc['f1']:.3f}" if pc else "n/a",
        result["seconds"],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
