"""A turn's scores do not depend on the batch it is scored in: alone, live, or among other conversations.

Why this needs a test: dynamic int8 quantisation computes one activation scale per input tensor, so in a
batch a window's int8 scores move with its batch-mates (up to 0.38 on the shipped bundle). The Guard scores
every window alone by default (batch_size=1, serving/guard.py MAX_BATCH_TOKENS), with int8 and with the fp32
re-scoring model, which makes the scores exactly equal, not merely close.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.guard import Guard
from serving.rescore import RescoreConfig

WORDS = ["hi", "how", "do", "I", "make", "a", "bomb", "no", "you", "idiot", "end", "this", "chat", "please", "sad"]
turn_texts = st.lists(st.sampled_from(WORDS), min_size=0, max_size=30).map(" ".join)
chats = st.lists(
    st.tuples(st.sampled_from(["user", "assistant", "user", "system"]), turn_texts), min_size=1, max_size=9
)


@pytest.fixture(scope="module")
def guards(bundle) -> dict[str, Guard]:
    """The default Guard, and one that re-scores every turn with fp32 (a margin no score escapes)."""
    rescoring = Guard.load(bundle, rescore="eager")
    assert rescoring.rescore is not None
    rescoring.rescore = RescoreConfig(rescoring.rescore.model, 1e9, "test: every turn re-scored")
    return {"int8": Guard.load(bundle, rescore=False), "int8+fp32": rescoring}


def _scores(decision) -> list:
    return [(t.action, t.reason, t.evidence, None if t.scores is None else dict(t.scores)) for t in decision.turns]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chat=chats, others=st.lists(chats, min_size=1, max_size=5), at=st.integers(0, 5))
def test_alone_in_a_batch_and_live_score_the_same(guards, chat, others, at) -> None:
    for g in guards.values():
        alone = g.assess(chat)
        batch = [("o", o) for o in others]
        batch.insert(min(at, len(batch)), ("me", chat))
        within = g.assess_many(batch)[min(at, len(others))]
        state = g.new_conversation()
        live = [g.observe(state, role, text) for role, text in chat]
        assert _scores(within) == _scores(alone)  # exactly: not within a tolerance
        assert [(t.action, t.scores and dict(t.scores)) for t in live] == [
            (t.action, t.scores and dict(t.scores)) for t in alone.turns
        ]
        assert (within.decision, within.end_turn, within.reason) == (alone.decision, alone.end_turn, alone.reason)


def test_batching_int8_would_move_the_scores(bundle) -> None:
    """The reason for batch_size=1: in a batch of 32, int8 scores of the same windows differ (tiny model here;
    the shipped bundle moved by up to 0.38). If this ever fails, onnxruntime quantises per row and batching
    could come back."""
    windows = [
        (ids, types)
        for ids, types in Guard.load(bundle).encoder.encode_conversation(
            [("user", " ".join(WORDS[: 1 + i % len(WORDS)]) * (1 + i % 3)) for i in range(32)]
        )
    ]
    alone = Guard.load(bundle, rescore=False).score_windows(windows)
    batched = Guard.load(bundle, rescore=False, batch_size=32).score_windows(windows)
    assert max(abs(a - b).max() for a, b in zip(alone, batched, strict=True)) > 0
