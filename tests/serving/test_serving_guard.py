"""Guard: decisions equal the shared policy on calibrated ONNX scores; live state; failures degrade to continue."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.calibration import scores_from_logits, temperature_vector
from serving.guard import ConversationState, Guard, GuardInputError
from serving.labels import LABELS_BY_ROLE, MODEL_LABELS
from serving.policy import CONTINUE, END, R_DEGRADED, replay
from serving.session import OnnxModel, resolve_providers
from serving.window import pad_batch
from tests.serving_fixtures import PERSISTENT as SHARED_PERSISTENT
from tests.serving_fixtures import REPO_ROOT

HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

PERSISTENT = [*SHARED_PERSISTENT, ("assistant", "I won't.")]


@pytest.fixture(scope="module")
def guard_fp32(bundle) -> Guard:
    return Guard.load(bundle, model="fp32")


def test_scores_and_decisions_are_the_shared_calibration_and_policy(guard_fp32: Guard) -> None:
    turns = PERSISTENT + [("user", "last one")]
    decision = guard_fp32.assess(turns, conv_id="c1")
    windows = [w for w in guard_fp32.encoder.encode_conversation(turns)]
    ids, mask, types = pad_batch(windows, guard_fp32.encoder.pad_id)
    logits = guard_fp32.model.run(np.array(ids), np.array(mask), np.array(types))
    probs = scores_from_logits(logits, temperature_vector(guard_fp32.temperatures))
    for t, row in zip(decision.turns, probs, strict=True):
        # only the labels the turn's role can carry are reported (the others are untrained for that role)
        assert list(t.scores) == list(LABELS_BY_ROLE[t.role])
        np.testing.assert_allclose(
            [t.scores[k] for k in t.scores], [row[MODEL_LABELS.index(k)] for k in t.scores], atol=1e-6
        )
    # ... and leaving them out changes no decision: the policy, given every label of every turn, agrees
    full = [dict(zip(MODEL_LABELS, row.tolist(), strict=True)) for row in probs]
    expected = replay(guard_fp32.policy, [r for r, _ in turns], full, stop_at_end=False)
    assert [(t.action, t.reason, t.evidence) for t in decision.turns] == [
        (a.action, a.reason, a.evidence) for a in expected
    ]
    # the tiny fixture's thresholds flag every user turn and every assistant redirection
    assert decision.decision == END and decision.end_turn == 4 and decision.reason == "persistent_harmful"
    assert decision.to_dict()["id"] == "c1" and decision.degraded is False


def test_bundle_policy_and_temperatures_are_used(bundle, guard: Guard) -> None:
    doc = json.loads((bundle / "bundle.json").read_text())
    assert guard.policy.to_dict() == doc["policy"]
    assert guard.temperatures == doc["temperatures"]
    assert guard.model.providers == ["CPUExecutionProvider"]
    assert guard.model.session.get_session_options().intra_op_num_threads == 1


def test_observe_matches_assess(guard_fp32: Guard) -> None:
    turns = [("system", "be nice"), *PERSISTENT, ("user", "ok bye")]
    decision = guard_fp32.assess(turns)
    state = guard_fp32.new_conversation()
    live = [guard_fp32.observe(state, r, t) for r, t in turns]
    assert [(t.index, t.action, t.reason, t.evidence) for t in live] == [
        (t.index, t.action, t.reason, t.evidence) for t in decision.turns
    ]
    for a, b in zip(live, decision.turns, strict=True):
        if a.scores is None:
            assert b.scores is None and a.role == "system"
        else:
            np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), atol=1e-5)


def test_branch_copy_and_serialisation(guard: Guard) -> None:
    state = guard.new_conversation()
    for r, t in PERSISTENT[:3]:
        guard.observe(state, r, t)
    branch = state.copy()
    restored = ConversationState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
    a = guard.observe(state, "assistant", "No.")
    b = guard.observe(restored, "assistant", "No.")
    assert a.to_dict() == b.to_dict()
    # the branch diverges (an edited message) without touching the original
    c = guard.observe(branch, "assistant", "Sure, here is how")
    assert branch.next_index == state.next_index == 4
    assert c.index == 3 and state.to_dict() != branch.to_dict()
    with pytest.raises(ValueError):
        ConversationState.from_dict({"version": 99})


def test_state_is_bounded_and_10000_turn_conversations_work(guard: Guard) -> None:
    """Cost independent of conversation length: the state stays the same size however long the chat runs."""
    state = guard.new_conversation()
    sizes = {}
    for i in range(2_000):
        result = guard.observe(state, "user" if i % 2 == 0 else "assistant", f"turn {i} hello there")
        assert not result.degraded
        if i in (50, 1_999):
            sizes[i] = len(json.dumps(state.to_dict()))
    assert len(state.context) == guard.window.max_turns
    assert sizes[1_999] <= sizes[50] + 200  # only the index digits grow
    turns = [("user" if i % 2 == 0 else "assistant", f"t{i} hello") for i in range(10_000)]
    decision = guard.assess(turns)
    assert len(decision.turns) == 10_000 and not decision.degraded
    # continuing a 10,000-turn conversation live: its saved state is as small as at turn 2,000
    state = guard.new_conversation()
    state.policy.next_index = 9_990  # fast-forward: the context below comes from the real turns
    for r, t in turns[9_990:]:
        last = guard.observe(state, r, t)
    assert last.index == 9_999 and len(json.dumps(state.to_dict())) <= sizes[1_999] + 200
    assert last.reason == decision.turns[-1].reason and last.action == decision.turns[-1].action


def test_empty_and_megabyte_turns(guard: Guard) -> None:
    big = "word " * 200_000  # 1 MB
    d = guard.assess([("user", ""), ("assistant", ""), ("user", big), ("user", "ü" * 1_000_000)])
    assert not d.degraded and all(t.scores is not None for t in d.turns)
    state = guard.new_conversation()
    assert not guard.observe(state, "user", big).degraded
    assert len(state.context[0]) <= guard.window.max_turn_tokens


@HYP
@given(texts=st.lists(st.text(max_size=300), min_size=1, max_size=6))
def test_arbitrary_unicode_never_crashes(guard: Guard, texts: list[str]) -> None:
    turns = [("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)]
    d = guard.assess(turns)
    assert len(d.turns) == len(texts) and not d.degraded
    state = guard.new_conversation()
    for r, t in turns:
        assert not guard.observe(state, r, t).degraded


junk = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(), st.binary(max_size=10),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.text(max_size=20).filter(lambda s: s not in ("user", "assistant", "system")),
)  # fmt: skip
turn_like = st.one_of(
    st.tuples(st.sampled_from(["user", "assistant"]), st.text(max_size=50)),
    st.tuples(junk, st.text(max_size=20)),
    st.tuples(st.sampled_from(["user", "assistant"]), junk),
    st.fixed_dictionaries({"role": junk, "text": junk}),
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "text": st.text(max_size=20)}),
    junk,
)


@HYP
@given(turns=st.lists(turn_like, min_size=1, max_size=8))
def test_wrong_roles_and_types_degrade_never_end(guard: Guard, turns: list) -> None:
    d = guard.assess(turns)
    assert len(d.turns) == len(turns)
    for t, raw in zip(d.turns, turns, strict=True):
        if t.degraded:
            assert t.action == CONTINUE and t.reason == R_DEGRADED and t.error
        else:
            assert isinstance(raw, tuple | dict)
    json.dumps(d.to_dict())  # always serialisable, even with junk roles
    state = guard.new_conversation()
    for raw in turns:
        role, text = (
            raw
            if isinstance(raw, tuple)
            else (raw.get("role"), raw.get("text"))
            if isinstance(raw, dict)
            else (raw, raw)
        )
        r = guard.observe(state, role, text)
        assert r.action in (CONTINUE, END)
        if r.degraded:
            assert r.action == CONTINUE and r.reason == R_DEGRADED


def test_malformed_call_is_a_clear_error(guard: Guard) -> None:
    for bad in ("hello", 5, None, {"role": "user", "text": "x"}):
        with pytest.raises(GuardInputError, match="turns must be a list"):
            guard.assess(bad)
    with pytest.raises(GuardInputError, match="state must be a ConversationState"):
        guard.observe({"next_index": 0}, "user", "hi")


class _Boom(RuntimeError):
    pass


def test_model_failure_answers_continue_even_where_the_policy_would_end(bundle) -> None:
    g = Guard.load(bundle)
    assert g.assess(PERSISTENT).decision == END  # ends at turn 4 when healthy
    real_run = g.model.run
    calls = {"n": 0}

    def flaky(ids, mask, types):
        calls["n"] += 1
        if ids.shape[0] == 1 and calls["n"] >= 5:
            raise _Boom("onnxruntime exploded")
        return real_run(ids, mask, types)

    g.model.run = flaky
    state = g.new_conversation()
    results = [g.observe(state, r, t) for r, t in PERSISTENT]
    assert results[4].action == CONTINUE and results[4].reason == R_DEGRADED and results[4].degraded
    assert "onnxruntime exploded" in results[4].error
    assert all(r.action == CONTINUE for r in results)
    assert g.stats()["degraded.model"] >= 1

    g.model.run = lambda ids, mask, types: np.full((ids.shape[0], len(MODEL_LABELS)), np.nan, np.float32)
    d = g.assess(PERSISTENT)
    assert d.decision == CONTINUE and d.reason == R_DEGRADED and d.degraded
    assert all(t.error == "model: non-finite scores" for t in d.turns)


def test_one_bad_window_in_a_batch_degrades_only_itself(bundle) -> None:
    g = Guard.load(bundle, batch_size=32)  # batches of several windows: the retry one by one is what is tested
    real_run = g.model.run

    def picky(ids, mask, types):
        if (ids == g.encoder.tokenizer.token_to_id("poison")).any():
            raise _Boom("bad window")
        return real_run(ids, mask, types)

    g.model.run = picky
    d = g.assess([("user", "hello"), ("assistant", "hi"), ("user", "poison"), ("assistant", "ok")])
    degraded = [t.index for t in d.turns if t.degraded]
    # turn 2 fails; turn 3 has turn 2 in its context window, so it fails too; 0 and 1 are scored
    assert degraded == [2, 3] and d.turns[0].scores is not None


def test_tokenizer_failure_degrades(bundle, monkeypatch) -> None:
    g = Guard.load(bundle)

    def broken(*a, **k):
        raise _Boom("tokenizer broke")

    monkeypatch.setattr(g.encoder, "tokenize_turn", broken)
    monkeypatch.setattr(g.encoder, "tokenize_turns", broken)
    d = g.assess(PERSISTENT)
    assert d.decision == CONTINUE and all(t.degraded for t in d.turns)
    r = g.observe(g.new_conversation(), "user", "hi")
    assert r.reason == R_DEGRADED and "tokenizer broke" in r.error


def test_an_ended_conversation_stays_ended_but_a_failing_turn_still_answers_continue(bundle) -> None:
    g = Guard.load(bundle)
    state = g.new_conversation()
    for r, t in PERSISTENT[:5]:
        last = g.observe(state, r, t)
    assert last.action == END and state.ended
    assert g.observe(state, "assistant", "x").reason == "already_ended"
    assert g.observe(state, "user", 42).action == CONTINUE


def test_eight_threads_share_one_guard(guard: Guard) -> None:
    convs = [
        [(("user", "assistant")[i % 2], f"conversation {c} turn {i} {'!' * c}") for i in range(7)] for c in range(16)
    ]
    single = [guard.assess(c).to_dict() for c in convs]
    single_live = []
    for c in convs:
        s = guard.new_conversation()
        single_live.append([guard.observe(s, r, t).to_dict() for r, t in c])
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            out = []
            for j, c in enumerate(convs):
                s = guard.new_conversation()
                out.append((guard.assess(c).to_dict(), [guard.observe(s, r, t).to_dict() for r, t in c], j))
            results[k] = out
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 8
    for out in results.values():
        for whole, live, j in out:
            assert whole == single[j] and live == single_live[j]


def test_cuda_request_falls_back_to_cpu_with_a_warning(bundle) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        providers = resolve_providers(["CUDAExecutionProvider", "CPUExecutionProvider"])
        model = OnnxModel(bundle / "model.onnx", providers=["CUDAExecutionProvider"])
    assert providers == ["CPUExecutionProvider"] and model.providers == ["CPUExecutionProvider"]
    assert any("CUDAExecutionProvider" in str(w.message) for w in caught)


def test_feeds_follow_the_graph_inputs(tmp_path, bundle) -> None:
    """A graph without token_type_ids (e.g. another encoder family) is fed only what it declares."""
    import onnx

    m = onnx.load(str(bundle / "model.fp32.onnx"))
    names = [i.name for i in m.graph.input]
    assert names == ["input_ids", "attention_mask", "token_type_ids"]
    model = OnnxModel(bundle / "model.fp32.onnx")
    assert list(model.inputs) == names and all(v is np.int64 for v in model.inputs.values())


def test_serving_imports_neither_torch_nor_pipeline(bundle) -> None:
    code = (
        "import sys, json\n"
        "from serving.guard import Guard\n"
        "import serving.cli, serving.bundle, serving.decision\n"
        f"g = Guard.load({str(bundle)!r})\n"
        "d = g.assess([('user', 'hello'), ('assistant', 'hi')])\n"
        "s = g.new_conversation(); g.observe(s, 'user', 'x')\n"
        "bad = [m for m in ('torch', 'transformers', 'pipeline', 'datasets', 'mlflow') if m in sys.modules]\n"
        "print(json.dumps({'bad': bad, 'decision': d.decision}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bad"] == [] and result["decision"] in (CONTINUE, END)


def test_every_name_the_package_exports_imports() -> None:
    """`from serving import ConversationState` (as the README once showed, and raised ImportError) and every
    other name in serving.__all__ import from the package itself."""
    import serving

    assert {"ConversationState", "Guard"} <= set(serving.__all__)
    for name in serving.__all__:
        assert getattr(serving, name).__name__ == name
