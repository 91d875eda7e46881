"""Windows, masks and the training subsample."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.model.windows import (
    build_windows,
    concat_windows,
    length_buckets,
    pos_weight,
    role_echo_windows,
    select_training_windows,
    swap_contexts,
    window_texts,
)
from serving.labels import MODEL_LABELS, label_mask
from serving.schema import parse_conversation
from serving.window import WindowEncoder, WindowSpec
from tests.train_fixture_factory import make_conversations


@pytest.fixture(scope="module")
def encoder(base_tokenizer_path) -> WindowEncoder:
    return WindowEncoder.from_file(str(base_tokenizer_path), WindowSpec(max_turns=4, max_tokens=64, max_turn_tokens=32))


def test_one_window_per_scored_turn_with_role_masks(encoder):
    convs = make_conversations(16, seed=5)
    ws = build_windows(convs, encoder)
    assert len(ws) == sum(len(c.turns) for c in convs)
    for i in range(len(ws)):
        assert tuple(ws.mask[i]) == label_mask(ws.roles[i])
        turn = convs[ws.conv_index[i]].turns[ws.turn_index[i]]
        assert [MODEL_LABELS[j] for j in np.flatnonzero(ws.labels[i])] == [n for n in MODEL_LABELS if n in turn.labels]
    # identical to what the serving renderer produces for that conversation
    c0 = convs[0]
    expected = encoder.encode_conversation([(t.role, t.text) for t in c0.turns])
    assert [ws.input_ids[i] for i in np.flatnonzero(ws.conv_index == 0)] == [ids for ids, _ in expected]


def test_labelled_turns_system_turns_and_label_subset(encoder):
    conv = parse_conversation(
        {
            "id": "c1",
            "turns": [
                {"role": "system", "text": "be nice", "labels": []},
                {"role": "assistant", "text": "hello", "labels": []},
                {"role": "user", "text": "you idiot", "labels": ["abuse"]},
            ],
            "category": "abuse",
            "meta": {"labelled_turns": [2]},
        }
    )
    ws = build_windows([conv], encoder)
    assert list(ws.turn_index) == [2]  # system skipped, unlabelled assistant turn is context only
    full = build_windows([conv], encoder, keep_unscored=True)
    assert list(full.turn_index) == [1, 2] and full.mask[0].sum() == 0
    only_abuse = build_windows([conv], encoder, label_subset=["abuse"])
    assert only_abuse.mask[0].tolist() == [1.0 if n == "abuse" else 0.0 for n in MODEL_LABELS]


def test_subsample_keeps_positives_and_hard_negatives_first(encoder):
    ws = build_windows(make_conversations(120, seed=7), encoder)
    n_pos = int(ws.positive.sum())
    budget = n_pos + 20
    idx = select_training_windows(ws, budget, seed=1, min_negative_share=0.0, hard_share=1.0)
    assert len(idx) == budget and len(set(idx.tolist())) == budget
    assert ws.positive[idx].sum() == n_pos
    assert ws.hard[idx].sum() == min(20, int(ws.hard.sum()))  # hard negatives fill the negative budget first
    same = select_training_windows(ws, budget, seed=1, min_negative_share=0.0, hard_share=1.0)
    assert np.array_equal(idx, same)
    mixed = select_training_windows(ws, budget, seed=1, min_negative_share=0.0, hard_share=0.5)
    negatives = mixed[~ws.positive[mixed]]
    assert ws.hard[negatives].sum() >= 10 and (~ws.hard[negatives]).sum() > 0  # easy negatives seen too
    assert len(select_training_windows(ws, None, seed=1, min_negative_share=0.5, hard_share=0.5)) == len(ws)
    small = select_training_windows(ws, 40, seed=1, min_negative_share=0.5, hard_share=0.6)
    assert len(small) == 40 and (~ws.positive[small]).sum() >= 20


def test_pos_weight_and_buckets(encoder):
    ws = build_windows(make_conversations(40, seed=3), encoder)
    pw = pos_weight(ws, cap=5.0)
    assert pw.shape == (len(MODEL_LABELS),) and np.all(pw >= 1.0) and np.all(pw <= 5.0)
    batches = length_buckets(list(range(len(ws))), ws.lengths, 8, np.random.default_rng(0))
    assert sorted(i for b in batches for i in b) == list(range(len(ws)))
    assert all(len(b) <= 8 for b in batches)


def test_window_texts_match_the_window_context(encoder):
    convs = make_conversations(8, seed=2)
    ws = build_windows(convs, encoder)
    ctx, tgt = window_texts(convs, ws, max_turns=encoder.spec.max_turns)
    assert len(ctx) == len(tgt) == len(ws)
    assert ctx[0] == "" and tgt[0].startswith("user: ")


def test_swap_contexts_keeps_each_turn_and_its_labels_but_changes_context(encoder):
    ws = build_windows(make_conversations(40, seed=3), encoder)
    swapped = swap_contexts(ws, encoder, share=0.6, seed=1, empty_share=0.25)
    assert swap_contexts(ws, encoder, share=0.0, seed=1) is ws
    assert swapped.input_ids is not ws.input_ids and len(swapped) == len(ws)
    np.testing.assert_array_equal(swapped.labels, ws.labels)
    np.testing.assert_array_equal(swapped.mask, ws.mask)
    changed = empty = 0
    for i in range(len(ws)):
        a, b = ws.input_ids[i], swapped.input_ids[i]
        ta, tb = ws.type_ids[i], swapped.type_ids[i]
        # the scored turn (segment 1) is untouched, the layout is still [CLS] ctx [SEP] turn [SEP]
        assert [x for x, t in zip(a, ta, strict=True) if t == 1] == [x for x, t in zip(b, tb, strict=True) if t == 1]
        assert b[0] == encoder.cls_id and b[-1] == encoder.sep_id and len(b) <= encoder.spec.max_tokens
        changed += a != b
        empty += tb.count(0) == 2 and ta.count(0) > 2
    assert 0.3 * len(ws) < changed < 0.8 * len(ws)
    assert empty > 0
    # deterministic for a seed
    again = swap_contexts(ws, encoder, share=0.6, seed=1, empty_share=0.25)
    assert again.input_ids == swapped.input_ids


def test_role_echo_turns_the_splits_own_refusals_into_benign_user_turns(encoder):
    convs = make_conversations(40, seed=3)
    ws = build_windows(convs, encoder)
    j = MODEL_LABELS.index("redirect")
    refusals = {
        convs[c].turns[t].text
        for c, t, r, y in zip(ws.conv_index, ws.turn_index, ws.roles, ws.labels[:, j], strict=True)
        if r == "assistant" and y > 0
    }
    assert refusals, "the fixture needs refused requests"
    echo = role_echo_windows(ws, convs, encoder, 30, seed=5)
    assert len(echo) == 30 and set(echo.roles) == {"user"} and echo.hard.all()
    assert not echo.labels.any()
    np.testing.assert_array_equal(echo.mask, np.tile(label_mask("user"), (30, 1)))
    for ids, types in zip(echo.input_ids, echo.type_ids, strict=True):
        target = [x for x, t in zip(ids, types, strict=True) if t == 1][:-1]  # the scored turn, without [SEP]
        assert encoder.tokenizer.decode(target) in {
            encoder.tokenizer.decode(encoder.tokenize_turn("user", text)) for text in refusals
        }
    assert any(t.count(0) == 2 for t in echo.type_ids) and any(t.count(0) > 2 for t in echo.type_ids)
    assert role_echo_windows(ws, convs, encoder, 30, seed=5).input_ids == echo.input_ids  # seeded
    assert len(role_echo_windows(ws, convs, encoder, 0, seed=5)) == 0
    both = concat_windows(ws, echo)
    assert len(both) == len(ws) + 30 and both.roles[-1] == "user"
    np.testing.assert_array_equal(both.labels[: len(ws)], ws.labels)
