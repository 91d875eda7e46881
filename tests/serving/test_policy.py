"""Behavioural tests of the termination policy: what must end, what must never end."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.labels import MODEL_LABELS
from serving.policy import (
    CONTINUE,
    END,
    R_ABUSE,
    R_FLAGGED,
    R_HARMFUL,
    R_SELF_HARM,
    R_USER_END,
    PolicyConfig,
    PolicyState,
    gold_end_at,
    replay,
    step,
)

CFG = PolicyConfig()
H, A, R = ["harmful_request"], ["abuse"], ["redirect"]


def persistent(kind: list[str], rounds: int = 3) -> list[tuple[str, list[str]]]:
    turns: list[tuple[str, list[str]]] = []
    for _ in range(rounds):
        turns += [("user", kind), ("assistant", R)]
    return turns


def test_persistent_harmful_ends_at_third_flag_after_two_redirections() -> None:
    assert gold_end_at(CFG, persistent(H)) == 4


def test_persistent_abuse_reason() -> None:
    roles = [r for r, _ in persistent(A)]
    actions = replay(CFG, roles, [{lab: 1.0 for lab in labs} for _, labs in persistent(A)])
    assert actions[-1].action == END and actions[-1].reason == R_ABUSE
    assert actions[-1].evidence == (0, 1, 2, 3, 4)


def test_flags_without_redirections_do_not_end() -> None:
    turns = [("user", H), ("assistant", []), ("user", H), ("assistant", []), ("user", H)]
    assert gold_end_at(CFG, turns) is None


def test_one_off_harmful_that_accepts_redirection_never_ends() -> None:
    turns = [("user", H), ("assistant", R), ("user", []), ("assistant", []), ("user", [])]
    assert gold_end_at(CFG, turns) is None


def test_flags_outside_window_are_forgotten() -> None:
    cfg = PolicyConfig(window_turns=4)
    turns = [("user", H), ("assistant", R), ("user", []), ("assistant", R), ("user", H), ("assistant", R), ("user", H)]
    assert gold_end_at(cfg, turns) is None


def test_end_request_ends_immediately() -> None:
    assert gold_end_at(CFG, [("user", []), ("assistant", []), ("user", ["end_request"])]) == 2


def test_self_harm_vetoes_any_end() -> None:
    turns = [("user", ["self_harm_risk"]), ("assistant", [])] + persistent(A)
    assert gold_end_at(CFG, turns) is None
    assert gold_end_at(CFG, [("user", ["self_harm_risk", "end_request"])]) is None


def test_self_harm_veto_expires_after_lookback() -> None:
    cfg = PolicyConfig(self_harm_lookback=2)
    turns = [
        ("user", ["self_harm_risk"]),
        ("assistant", []),
        ("user", []),
        ("assistant", []),
        ("user", ["end_request"]),
    ]
    assert gold_end_at(cfg, turns) == 4


def test_veto_and_flag_reasons_are_reported() -> None:
    state = PolicyState()
    a = step(CFG, state, "user", {"self_harm_risk": 0.9, "abuse": 0.9})
    assert a.action == CONTINUE and a.reason == R_SELF_HARM and a.evidence == (0,)
    state = PolicyState()
    a = step(CFG, state, "user", {"harmful_request": 0.9})
    assert a.reason == R_FLAGGED


def test_reasons_for_harmful_and_user_end() -> None:
    turns = persistent(H)
    actions = replay(CFG, [r for r, _ in turns], [{lab: 1.0 for lab in labs} for _, labs in turns])
    assert actions[-1].reason == R_HARMFUL
    actions = replay(CFG, ["user"], [{"end_request": 0.99}])
    assert actions[0].reason == R_USER_END


def test_state_round_trips_through_json_and_copies_are_independent() -> None:
    state = PolicyState()
    for role, labs in persistent(H, 2):
        step(CFG, state, role, {lab: 1.0 for lab in labs})
    restored = PolicyState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
    branch = state.copy()
    step(CFG, branch, "user", {"harmful_request": 1.0})
    assert branch.end_turn == 4 and state.end_turn is None


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="unknown policy keys"):
        PolicyConfig.from_dict({"min_flaged": 2})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PolicyConfig.from_dict({"thresholds": {"abuse": 1.5}})
    assert PolicyConfig.from_dict(CFG.to_dict()) == CFG


score_st = st.fixed_dictionaries({k: st.floats(0, 1) for k in MODEL_LABELS})
turn_st = st.tuples(st.sampled_from(["user", "assistant", "system"]), score_st)


@settings(max_examples=200, deadline=None)
@given(st.lists(turn_st, max_size=40))
def test_policy_invariants(turns: list[tuple[str, dict[str, float]]]) -> None:
    """Only user turns end; an end is never vetoed; state stays bounded by the window."""
    state = PolicyState()
    for role, scores in turns:
        a = step(CFG, state, role, scores)
        assert len(state.flagged) <= CFG.window_turns and len(state.redirects) <= CFG.window_turns
        if a.action == END and state.end_turn == a.index:
            assert role == "user"
            sh = state.last_self_harm
            assert sh is None or a.index - sh > CFG.self_harm_lookback
