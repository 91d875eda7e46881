"""The one window renderer: layout, truncation, and incremental == whole-conversation encoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.window import WindowEncoder, WindowSpec, pad_batch


@pytest.fixture(scope="module")
def enc(base_tokenizer_path) -> WindowEncoder:
    return WindowEncoder.from_file(str(base_tokenizer_path), WindowSpec(max_turns=3, max_tokens=40, max_turn_tokens=16))


def test_layout_and_segments(enc: WindowEncoder) -> None:
    windows = enc.encode_conversation([("user", "hello there"), ("assistant", "hi, how can I help?")])
    ids, types = windows[1]
    assert ids[0] == enc.cls_id and ids[-1] == enc.sep_id
    sep = ids.index(enc.sep_id)
    assert types[: sep + 1] == [0] * (sep + 1) and set(types[sep + 1 :]) == {1}
    assert enc.tokenizer.decode(ids[sep + 1 : -1]).startswith("assistant :")


def test_target_kept_whole_and_context_left_truncated(enc: WindowEncoder) -> None:
    old = " ".join(f"old{i}" for i in range(200))
    new = " ".join(f"new{i}" for i in range(200))
    turns = [("user", old), ("user", new), ("assistant", "no"), ("user", "the last turn")]
    ids, types = enc.encode_conversation(turns)[3]
    assert len(ids) <= enc.spec.max_tokens
    target = enc.tokenize_turn("user", "the last turn")
    assert ids[-len(target) - 1 : -1] == target
    # the newest context survives, the oldest is cut
    assert enc.tokenizer.decode(ids).count("assistant : no") == 1
    text = enc.tokenizer.decode(ids)
    assert "new0 " in text and "old0 " not in text


def test_scored_turn_capped(enc: WindowEncoder) -> None:
    ids, _ = enc.encode_conversation([("user", "a " * 10_000)])[0]
    assert len(ids) == enc.spec.max_turn_tokens + 3


def test_megabyte_turn_is_bounded(enc: WindowEncoder) -> None:
    assert len(enc.tokenize_turn("user", "x" * 1_000_000)) <= enc.spec.max_turn_tokens


def test_system_turns_are_not_context(enc: WindowEncoder) -> None:
    with_sys = enc.encode_conversation([("system", "you are a bot"), ("user", "hi")])
    without = enc.encode_conversation([("user", "hi")])
    assert with_sys[1] == without[0]


def test_only_max_turns_of_context(enc: WindowEncoder) -> None:
    turns = [("user", f"t{i}") for i in range(10)]
    ids, _ = enc.encode_conversation(turns)[9]
    text = enc.tokenizer.decode(ids)
    assert "t6" in text and "t5" not in text


def test_pad_batch() -> None:
    ids, mask, types = pad_batch([([1, 2, 3], [0, 0, 1]), ([1, 2], [0, 1])], pad_id=0)
    assert ids == [[1, 2, 3], [1, 2, 0]] and mask == [[1, 1, 1], [1, 1, 0]] and types[1] == [0, 1, 0]


def test_bad_spec() -> None:
    with pytest.raises(ValueError):
        WindowSpec(max_tokens=10, max_turn_tokens=16)
    with pytest.raises(ValueError):
        WindowSpec(truncation="right")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["user", "assistant"]), st.text(min_size=1, max_size=80)), min_size=1, max_size=8
    )
)
def test_incremental_assembly_matches_whole(enc: WindowEncoder, turns: list[tuple[str, str]]) -> None:
    """What a live scorer builds turn by turn equals what training saw for the whole conversation."""
    whole = enc.encode_conversation(turns)
    cache: list[list[int]] = []
    for (role, text), expected in zip(turns, whole, strict=True):
        ids = enc.tokenize_turn(role, text)
        assert enc.assemble(cache, ids) == expected
        cache = (cache + [ids])[-enc.spec.max_turns :]


def test_a_callers_tokenizer_is_left_as_it_was(base_tokenizer_path) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(base_tokenizer_path))
    tok.enable_truncation(8)
    enc = WindowEncoder(tok, WindowSpec())
    assert tok.truncation is not None and tok.truncation["max_length"] == 8
    assert enc.tokenizer.truncation is None and enc.tokenizer.padding is None
    from_file = WindowEncoder.from_file(str(base_tokenizer_path), WindowSpec())
    assert from_file.tokenize_turn("user", "hello there") == enc.tokenize_turn("user", "hello there")
