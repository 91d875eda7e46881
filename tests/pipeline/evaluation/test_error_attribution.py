"""Error attribution: each wrong replay is traced to the head whose gold scores alone would fix it."""

from __future__ import annotations

import pytest

from pipeline.evaluation.error_attribution import HEADS, attribute, attribute_all, error_kind, with_gold
from serving.labels import MODEL_LABELS
from serving.policy import PolicyConfig, gold_end_at
from serving.schema import Conversation, Turn

POLICY = PolicyConfig.from_dict(
    {
        "thresholds": {name: 0.5 for name in MODEL_LABELS},
        "min_flagged": 3,
        "min_redirections": 2,
        "window_turns": 12,
        "self_harm_lookback": 12,
        "end_on_request": True,
    }
)
HARM = ("user", ("harmful_request",))
REFUSE = ("assistant", ("redirect",))


def conv(turns: list[tuple[str, tuple[str, ...]]], cid: str = "c", category: str = "x") -> Conversation:
    ts = tuple(Turn(role, f"turn {i}", labels) for i, (role, labels) in enumerate(turns))
    end = gold_end_at(POLICY, [(t.role, t.labels) for t in ts])
    return Conversation(id=cid, turns=ts, end_at=end, category=category)


def scores_from_gold(c: Conversation, value: float = 0.9) -> list[dict[str, float]]:
    """Model scores that agree with the gold labels (value for a positive, 0.05 otherwise)."""
    return [{name: (value if name in t.labels else 0.05) for name in MODEL_LABELS} for t in c.turns]


PERSISTENT = conv([HARM, REFUSE, HARM, REFUSE, HARM, REFUSE], category="persistent_harmful")


def test_a_correct_replay_has_no_error() -> None:
    assert PERSISTENT.end_at == 4
    assert attribute(POLICY, PERSISTENT, scores_from_gold(PERSISTENT)) is None


def test_a_missed_redirect_is_blamed_on_the_redirect_head() -> None:
    s = scores_from_gold(PERSISTENT)
    s[3]["redirect"] = 0.2  # the second refusal not read as one
    assert attribute(POLICY, PERSISTENT, s) == {
        "id": "c",
        "category": "persistent_harmful",
        "error": "missed",
        "fixed_by": ["redirects"],
    }


def test_a_false_self_harm_signal_that_vetoes_is_blamed_on_that_head() -> None:
    s = scores_from_gold(PERSISTENT)
    s[2]["self_harm_risk"] = 0.7
    assert attribute(POLICY, PERSISTENT, s)["fixed_by"] == ["self_harm_signal"]


def test_two_wrong_heads_need_several() -> None:
    s = scores_from_gold(PERSISTENT)
    s[3]["redirect"] = 0.2
    s[4]["harmful_request"] = 0.1
    r = attribute(POLICY, PERSISTENT, s)
    assert r["error"] == "missed" and r["fixed_by"] == []


def test_false_and_early_ends() -> None:
    benign = conv([("user", ()), ("assistant", ()), ("user", ())], category="benign")
    s = scores_from_gold(benign)
    s[2]["end_request"] = 0.99
    assert attribute(POLICY, benign, s) == {
        "id": "c",
        "category": "benign",
        "error": "false_end",
        "fixed_by": ["end_request"],
    }
    early = scores_from_gold(PERSISTENT)
    early[0]["end_request"] = 0.99
    assert attribute(POLICY, PERSISTENT, early)["error"] == "early"
    assert error_kind(PERSISTENT, 5) is None and error_kind(PERSISTENT, 3) == "early"


def test_every_oracle_at_once_reproduces_the_gold_outcome() -> None:
    import random

    rng = random.Random(0)
    kinds = [HARM, REFUSE, ("user", ("abuse",)), ("user", ()), ("assistant", ()), ("user", ("self_harm_risk",))]
    for k in range(60):
        c = conv([rng.choice(kinds) for _ in range(rng.randint(1, 14))], cid=str(k))
        noisy = [{name: rng.random() for name in MODEL_LABELS} for _ in c.turns]
        fixed = with_gold(c, noisy, list(HEADS))
        assert attribute(POLICY, c, fixed) is None


def test_summary_counts_per_kind_and_category() -> None:
    a = scores_from_gold(PERSISTENT)
    a[3]["redirect"] = 0.2
    benign = conv([("user", ())], cid="b", category="benign")
    b = scores_from_gold(benign)
    b[0]["end_request"] = 0.99
    out = attribute_all(POLICY, [PERSISTENT, benign, PERSISTENT], [a, b, scores_from_gold(PERSISTENT)])
    assert out["missed"]["overall"] == {
        "errors": 1,
        "fixed_by_self_harm_signal": 0,
        "fixed_by_end_request": 0,
        "fixed_by_flags": 0,
        "fixed_by_redirects": 1,
        "needs_several": 0,
    }
    assert out["false_end"]["per_category"]["benign"]["fixed_by_end_request"] == 1
    assert out["early"]["overall"]["errors"] == 0 and len(out["rows"]) == 2
    with pytest.raises(ValueError, match="unknown heads"):
        attribute_all(POLICY, [benign], [b], ["nope"])
