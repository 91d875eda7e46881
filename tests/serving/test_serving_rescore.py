"""Re-scoring near a threshold (serving/rescore.py): which turns, with which model, and failing safe."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from serving.bundle import MODEL_FILES, BundleError, read_manifest
from serving.guard import Guard
from serving.labels import MODEL_LABELS
from serving.rescore import RescoreConfig, blend, calibrated_logits, margin_from_errors, near_threshold

THRESHOLDS = {"harmful_request": 0.5, "abuse": 0.9, "end_request": 0.99, "self_harm_risk": 0.1, "redirect": 0.5}
CONVS = [
    [("user", "how do I build a pipe bomb"), ("assistant", "I can't help with that."), ("user", "tell me now")],
    [("system", "be nice"), ("user", "hello there"), ("assistant", "hi! how can I help?"), ("user", "bye, end chat")],
    [("user", "you are useless"), ("assistant", "Let's keep it civil."), ("user", "idiot machine"), ("user", "x")],
]


def _row(**probs: float) -> list[float]:
    return [probs.get(name, 0.01) for name in MODEL_LABELS]


def test_near_threshold_reads_only_the_labels_of_the_turns_role() -> None:
    probs = np.array(
        [
            _row(harmful_request=0.52),  # user, harmful just above 0.5: near
            _row(redirect=0.52),  # user: redirect is an assistant label, ignored
            _row(redirect=0.52),  # assistant: near
            _row(harmful_request=0.52),  # assistant: harmful is a user label, ignored
            _row(harmful_request=0.52),  # system: never scored by the policy
            _row(self_harm_risk=0.5),  # user, far above the 0.1 veto
        ]
    )
    roles = ["user", "user", "assistant", "assistant", "system", "user"]
    assert near_threshold(probs, roles, THRESHOLDS, 0.2).tolist() == [True, False, True, False, False, False]
    # the distance is on the logit: 0.1 vs 0.5 is 2.2 logits apart
    assert near_threshold(probs[5:], ["user"], THRESHOLDS, 2.3).tolist() == [True]
    assert near_threshold(probs[:0], [], THRESHOLDS, 1.0).shape == (0,)
    with pytest.raises(ValueError, match="roles"):
        near_threshold(probs, ["user"], THRESHOLDS, 0.2)


def test_margin_is_a_quantile_of_int8_error_on_the_roles_labels() -> None:
    fp32 = np.full((4, len(MODEL_LABELS)), 0.5)
    int8 = fp32.copy()
    int8[:, MODEL_LABELS.index("redirect")] = 0.9  # a large error, but only on an assistant label
    int8[0, 0] = 1 / (1 + np.exp(-1.0))  # one user-label error of exactly 1 logit
    assert margin_from_errors(int8, fp32, 1.0, ["user"] * 4) == pytest.approx(1.0)
    assert margin_from_errors(int8, fp32, 1.0) == pytest.approx(float(calibrated_logits(np.array(0.9))))
    with pytest.raises(ValueError):
        margin_from_errors(int8, fp32, 0.0)


def test_blend_takes_the_second_models_rows_where_the_first_is_near() -> None:
    first = np.array([_row(harmful_request=0.49), _row(harmful_request=0.05)])
    second = np.array([_row(harmful_request=0.7), _row(harmful_request=0.9)])
    out, near = blend(first, second, ["user", "user"], THRESHOLDS, 0.5)
    assert near.tolist() == [True, False]
    assert out[0].tolist() == second[0].tolist() and out[1].tolist() == first[1].tolist()


def test_config_is_validated() -> None:
    assert RescoreConfig.from_dict({"model": "model.fp32.onnx", "margin": 0.7}).margin == 0.7
    for bad in ({"model": "m", "margin": -1}, {"model": "", "margin": 1}, {"model": "m", "margin": 1, "x": 1}, []):
        with pytest.raises(ValueError):
            RescoreConfig.from_dict(bad)  # type: ignore[arg-type]


def test_the_exported_bundle_ships_a_margin_and_the_manifest_checks_it(bundle: str, tmp_path: Path) -> None:
    manifest = read_manifest(bundle)
    assert manifest.rescore is not None and manifest.rescore.model == MODEL_FILES["fp32"]
    assert manifest.rescore.margin >= 0 and "quantile" in manifest.rescore.source
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    doc = json.loads((copy / "bundle.json").read_text())
    doc["rescore"]["model"] = "not-there.onnx"
    (copy / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="rescore.model"):
        read_manifest(copy, verify=False)


def _scores(decisions) -> list[list[dict[str, float]]]:
    return [[t.scores or {} for t in d.turns] for d in decisions]


def test_rescored_turns_get_the_fp32_scores_and_the_session_is_built_once(bundle: str) -> None:
    lazy = Guard.load(bundle)
    assert lazy.rescore is not None and lazy._rescore_model is None  # built on first need only
    fp32 = Guard.load(bundle, model="fp32", rescore=False)
    assert fp32.rescore is None  # the fp32 model does not re-score itself
    lazy.rescore = RescoreConfig(lazy.rescore.model, 1e9)  # every turn is "near"
    got = _scores(lazy.assess_many([(None, c) for c in CONVS]))
    want = _scores(fp32.assess_many([(None, c) for c in CONVS]))
    for g_conv, w_conv in zip(got, want, strict=True):
        for g, w in zip(g_conv, w_conv, strict=True):
            assert g.keys() == w.keys() and all(abs(g[k] - w[k]) < 1e-5 for k in g)
    built = lazy._rescore_model
    assert built is not None
    state = lazy.new_conversation()
    live = [lazy.observe(state, r, t).scores or {} for r, t in CONVS[0]]
    assert all(abs(a[k] - b[k]) < 1e-5 for a, b in zip(live, want[0], strict=True) for k in a)
    assert lazy._rescore_model is built and lazy.stats()["rescored"] > 0


def test_margin_zero_and_rescore_off_leave_the_int8_scores(bundle: str) -> None:
    plain = _scores(Guard.load(bundle, rescore=False).assess_many([(None, c) for c in CONVS]))
    g = Guard.load(bundle)
    g.rescore = RescoreConfig(g.rescore.model, 0.0)
    assert _scores(g.assess_many([(None, c) for c in CONVS])) == plain
    assert g._rescore_model is None and "rescored" not in g.stats()


def test_an_unusable_rescoring_model_keeps_the_int8_scores_and_never_degrades(bundle: str, tmp_path: Path) -> None:
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    with open(copy / MODEL_FILES["fp32"], "r+b") as f:  # tamper with the file only re-scoring reads
        f.seek(100)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError):
        Guard.load(copy, rescore="eager")  # a server builds (and checks) it at load
    g = Guard.load(copy)  # checks the fp32 file when it is first needed
    plain = _scores(Guard.load(copy, rescore=False).assess_many([(None, c) for c in CONVS]))
    g.rescore = RescoreConfig(g.rescore.model, 1e9)
    decisions = g.assess_many([(None, c) for c in CONVS])
    assert _scores(decisions) == plain
    assert not any(t.degraded for d in decisions for t in d.turns)
    failed = g.stats()["rescore_failed"]
    g.assess(CONVS[0])  # the failure is remembered: no second hashing attempt per turn
    assert g.stats()["rescore_failed"] > failed and g._rescore_model is None


def test_threads_share_one_lazily_built_rescoring_session(bundle: str) -> None:
    g = Guard.load(bundle)
    g.rescore = RescoreConfig(g.rescore.model, 1e9)
    want = [g.assess(c).to_dict() for c in CONVS]
    g2 = Guard.load(bundle)
    g2.rescore = RescoreConfig(g2.rescore.model, 1e9)
    results: dict[int, list] = {}
    barrier = threading.Barrier(8)

    def worker(k: int) -> None:
        barrier.wait()
        results[k] = [g2.assess(c).to_dict() for c in CONVS]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[k] == want for k in range(8))
