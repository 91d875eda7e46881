"""Hostile input to the scorer itself: bad characters are scored, not skipped; forged states are refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.cli import main as cli_main
from serving.guard import ConversationState, Guard, GuardInputError, StateError
from serving.policy import END
from serving.state import seal, unseal
from serving.window import clean_text
from tests.serving_fixtures import PERSISTENT

HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

#: Any code point, lone surrogates included (st.text leaves them out unless asked).
hostile_text = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=120)


@HYP
@given(texts=st.lists(hostile_text, min_size=1, max_size=5))
def test_any_text_is_scored_as_its_cleaned_self(guard: Guard, texts: list[str]) -> None:
    """A lone surrogate used to make its turn unscorable (degraded): one per user turn switched the guard off."""
    turns = [("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)]
    d = guard.assess(turns)
    clean = guard.assess([(r, clean_text(t)) for r, t in turns])
    assert not d.degraded and [t.scores for t in d.turns] == [t.scores for t in clean.turns]
    state = guard.new_conversation()
    for (r, t), expected in zip(turns, d.turns, strict=True):
        live = guard.observe(state, r, t)
        assert not live.degraded and live.action == expected.action


def test_a_lone_surrogate_in_every_user_turn_does_not_switch_the_guard_off(guard: Guard) -> None:
    plain = guard.assess(PERSISTENT)
    assert plain.decision == END  # the tiny fixture model ends this chat by persistence
    spiked = guard.assess([(r, t + " \ud800" if r == "user" else t) for r, t in PERSISTENT])
    assert spiked.decision == END and spiked.end_turn == plain.end_turn and not spiked.degraded
    assert clean_text("bye \ud800 \udfff") == "bye \ufffd \ufffd"
    assert clean_text("\ud83d\ude00") == "\U0001f600"  # a pair written as two code points is the character


def _valid_state(guard: Guard) -> dict:
    state = guard.new_conversation()
    for r, t in PERSISTENT[:4]:
        guard.observe(state, r, t)
    return state.to_dict()


def test_the_reported_forgery_is_refused(guard: Guard) -> None:
    forged = {"version": 1, "max_turns": 6, "policy": {"next_index": 0, "end_turn": "garbage"}}
    with pytest.raises(StateError):
        ConversationState.from_dict(forged)
    with pytest.raises(StateError):
        guard.restore_state(forged)


def _edits(d: dict) -> list[tuple[str, dict]]:
    """One field of a valid state made wrong at a time, with what it would do if accepted."""
    out = []

    def edited(name: str, fn) -> None:
        e = copy.deepcopy(d)
        fn(e)
        out.append((name, e))

    edited("ended by fiat", lambda e: e["policy"].update(end_turn=1, end_reason="persistent_harmful", end_evidence=[1]))
    edited("end without a reason", lambda e: e["policy"].update(end_turn=1, end_evidence=[1]))
    edited(
        "end in the future", lambda e: e["policy"].update(end_turn=99, end_reason="persistent_abuse", end_evidence=[99])
    )
    edited("garbage end turn", lambda e: e["policy"].update(end_turn="garbage"))
    edited("flag in the future", lambda e: e["policy"]["flagged"].append([50, ["abuse"]]))
    edited("unknown flag kind", lambda e: e["policy"]["flagged"].append([3, ["end_request"]]))
    edited("flags out of order", lambda e: e["policy"].update(flagged=[[2, ["abuse"]], [0, ["abuse"]]]))
    edited("bool index", lambda e: e["policy"].update(next_index=True))
    edited("float index", lambda e: e["policy"].update(next_index=4.0))
    edited("huge index", lambda e: e["policy"].update(next_index=10**30))
    edited("negative redirect", lambda e: e["policy"]["redirects"].append(-1))
    edited("veto in the future", lambda e: e["policy"].update(last_self_harm=10))
    edited("missing policy key", lambda e: e["policy"].pop("redirects"))
    edited("unknown policy key", lambda e: e["policy"].update(extra=1))
    edited("unknown state key", lambda e: e.update(extra=1))
    edited("missing state key", lambda e: e.pop("context"))
    edited("another window", lambda e: e.update(max_turns=7))
    edited("too many context turns", lambda e: e.update(context=e["context"] * 3))
    edited("token beyond the vocabulary", lambda e: e["context"][0].append(10**9))
    edited("negative token", lambda e: e["context"][0].append(-5))
    edited("string token", lambda e: e["context"][0].append("7"))
    edited("over-long turn", lambda e: e["context"][0].extend([1] * 100))
    edited("another bundle", lambda e: e.update(bundle="sha256:" + "0" * 64))
    edited("flags older than the window", lambda e: e["policy"].update(next_index=40, flagged=[[1, ["abuse"]]]))
    return out


def test_every_forged_field_is_refused_with_a_value_error(guard: Guard) -> None:
    d = _valid_state(guard)
    restored = guard.restore_state(json.loads(json.dumps(d)))
    assert restored.to_dict() == d and guard.observe(restored, "user", "hello").action in ("continue", "end")
    for name, forged in _edits(d):
        with pytest.raises(StateError):
            guard.restore_state(forged)
            pytest.fail(f"accepted a state with {name}")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=5),
    max_leaves=16,
)


@HYP
@given(
    raw=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "version": st.just(1),
                "bundle": json_values,
                "max_turns": json_values,
                "policy": json_values,
                "context": json_values,
            }
        ),
        st.fixed_dictionaries(
            {
                "version": st.just(1),
                "bundle": st.none(),
                "max_turns": st.just(6),
                "context": st.just([]),
                "policy": st.fixed_dictionaries(
                    {
                        k: json_values
                        for k in (
                            "next_index",
                            "flagged",
                            "redirects",
                            "last_self_harm",
                            "end_turn",
                            "end_reason",
                            "end_evidence",
                        )
                    }
                ),
            }
        ),
    )
)
def test_garbage_states_raise_only_state_errors(guard: Guard, raw) -> None:
    """Never KeyError, TypeError or OverflowError: a server maps StateError to a 4xx."""
    try:
        state = guard.restore_state(raw)
    except StateError:
        return
    assert state.to_dict() == raw  # whatever is accepted is exactly a state to_dict could have written


def test_only_a_signature_proves_a_state_is_ours(guard: Guard) -> None:
    """An end by a user request at a real turn is a state the policy can write, so no field check refuses it;
    the seal does: the key stays on the servers, and any change to the sealed string is refused."""
    key = b"k" * 32
    d = _valid_state(guard)
    forged = copy.deepcopy(d)
    forged["policy"].update(end_turn=2, end_reason="user_requested_end", end_evidence=[2])
    assert guard.restore_state(forged).ended  # plausible, so accepted without a seal
    token = seal(guard.restore_state(d), key)
    assert guard.restore_state(unseal(token, key)).to_dict() == d
    payload, tag = token.split(".")
    import base64

    tampered = base64.urlsafe_b64encode(json.dumps(forged, separators=(",", ":")).encode()).rstrip(b"=").decode()
    for bad in (f"{tampered}.{tag}", token[:-2], token + "A", "x", 5, None, token.replace(".", "")):
        with pytest.raises(StateError):
            unseal(bad, key)
    with pytest.raises(StateError, match="another key"):
        unseal(token, b"q" * 32)


def test_a_state_of_another_bundle_is_refused_by_observe(guard: Guard) -> None:
    state = guard.new_conversation()
    state.bundle = "sha256:" + "1" * 64
    with pytest.raises(GuardInputError, match="another bundle"):
        guard.observe(state, "user", "hi")


def test_cli_answers_every_hostile_line(bundle, tmp_path: Path) -> None:
    """Deep nesting, a 5,000-digit integer, lone surrogates in id and text: one output line each, never a crash."""
    lines = [
        "[" * 5_000 + "]" * 5_000,
        '{"id": ' + "9" * 5_000 + ', "turns": [{"role": "user", "text": "hi"}]}',
        '{"id": "x\\ud800", "turns": [{"role": "user", "text": "end this chat \\ud800 now"}]}',
        '{"id": "ok", "turns": [{"role": "user", "text": "hello"}]}',
        '{"id": "deep", "turns": [{"role": "user", "text": "hi", "meta": '
        + '{"a":' * 3_000
        + "1"
        + "}" * 3_000
        + "}]}",
    ]
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert cli_main(["score", "--bundle", str(bundle), "--input", str(inp), "--output", str(out), "--no-progress"]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == len(lines)
    assert [r["degraded"] for r in records] == [True, True, False, False, True]
    assert records[2]["id"] == "x\ud800" and records[2]["turns"][0]["scores"] is not None
    assert all(r["decision"] == "continue" for r in records)
