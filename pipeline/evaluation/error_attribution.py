"""Why the replayed policy got a conversation wrong: each error traced to the model heads that caused it.

Why: recall and the false-termination rate say how often the policy errs, not which head to fix. A missed
end can come from a false self-harm signal (the veto), an end request scored under its threshold, abusive or
harmful turns left unflagged, or refusals not read as redirections; the fixes differ (data for one family,
a threshold, the veto rule). Each wrong conversation is replayed again with one head's scores replaced by the
gold labels (an oracle for that head); a head whose oracle alone makes the outcome right is a cause. When no
single oracle is enough the error is counted as `needs_several`. With every oracle at once the replay gives
the gold outcome by construction (`end_at` is the policy fed the gold labels), which the tests check.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from serving.policy import PolicyConfig, first_end, replay
from serving.schema import Conversation

#: head -> (role whose turns it scores, labels replaced by gold). Order = report order.
HEADS: dict[str, tuple[str, tuple[str, ...]]] = {
    "self_harm_signal": ("user", ("self_harm_risk",)),
    "end_request": ("user", ("end_request",)),
    "flags": ("user", ("harmful_request", "abuse")),
    "redirects": ("assistant", ("redirect",)),
}
ERRORS = ("missed", "early", "false_end")


def with_gold(
    conv: Conversation, scores: Sequence[Mapping[str, float]], heads: Sequence[str]
) -> list[dict[str, float]]:
    """`scores` with the labels of `heads` replaced by the gold labels (1.0 / 0.0) on their role's turns."""
    out = [dict(s) for s in scores]
    for head in heads:
        role, labels = HEADS[head]
        for turn, s in zip(conv.turns, out, strict=True):
            if turn.role == role:
                for label in labels:
                    s[label] = 1.0 if label in turn.labels else 0.0
    return out


def error_kind(conv: Conversation, end_index: int | None) -> str | None:
    """'missed', 'early', 'false_end', or None when the outcome is right (an end at or after `end_at`)."""
    if conv.end_at is None:
        return None if end_index is None else "false_end"
    if end_index is None:
        return "missed"
    return "early" if end_index < conv.end_at else None


def _end_index(policy: PolicyConfig, conv: Conversation, scores: Sequence[Mapping[str, float]]) -> int | None:
    end = first_end(replay(policy, [t.role for t in conv.turns], scores))
    return None if end is None else end.index


def attribute(
    policy: PolicyConfig,
    conv: Conversation,
    scores: Sequence[Mapping[str, float]],
    heads: Sequence[str] = tuple(HEADS),
) -> dict[str, Any] | None:
    """The error of one conversation and the heads whose gold scores alone would fix it (None: no error)."""
    kind = error_kind(conv, _end_index(policy, conv, scores))
    if kind is None:
        return None
    fixed_by = [h for h in heads if error_kind(conv, _end_index(policy, conv, with_gold(conv, scores, [h]))) is None]
    return {"id": conv.id, "category": conv.category or "unknown", "error": kind, "fixed_by": fixed_by}


def attribute_all(
    policy: PolicyConfig,
    conversations: Sequence[Conversation],
    scores: Sequence[Sequence[Mapping[str, float]]],
    heads: Sequence[str] = tuple(HEADS),
) -> dict[str, Any]:
    """Counts per error kind, overall and per category: how many errors each head's oracle alone fixes, and how
    many need several (`rows`: one entry per wrong conversation)."""
    unknown = [h for h in heads if h not in HEADS]
    if unknown:
        raise ValueError(f"unknown heads {unknown}; known: {list(HEADS)}")
    rows = [
        r for conv, s in zip(conversations, scores, strict=True) if (r := attribute(policy, conv, s, heads)) is not None
    ]

    def counts(rs: Sequence[dict[str, Any]]) -> dict[str, int]:
        c = Counter(h for r in rs for h in r["fixed_by"])
        return {
            "errors": len(rs),
            **{f"fixed_by_{h}": int(c[h]) for h in heads},
            "needs_several": sum(1 for r in rs if not r["fixed_by"]),
        }

    out: dict[str, Any] = {"heads": list(heads)}
    for kind in ERRORS:
        rs = [r for r in rows if r["error"] == kind]
        by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rs:
            by_cat[r["category"]].append(r)
        out[kind] = {"overall": counts(rs), "per_category": {c: counts(v) for c, v in sorted(by_cat.items())}}
    out["rows"] = rows
    return out
