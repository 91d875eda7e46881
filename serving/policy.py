"""The termination policy: a small state machine over per-turn label scores.

Production (`Guard.observe`), evaluation (replay of the test split) and the
synthetic generator (gold `end_at`) all run this code, so what is measured is
what ships. It only reads scores; it never sees text.

Semantics (DESIGN.md): end when the user confidently asks to end, or when at
least `min_flagged` user turns within the last `window_turns` turns were flagged
(harmful request or abuse above threshold) with at least `min_redirections`
assistant redirections between the first of them and now, the current turn
being one of them. Self-harm risk within `self_harm_lookback` turns vetoes any
end. Every action carries a reason code and the turn indices behind it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

CONTINUE = "continue"
END = "end"

# Reason codes (stable: clients and metrics key on them).
R_BENIGN = "benign"
R_ASSISTANT = "assistant_turn"
R_SYSTEM = "system_turn"
R_FLAGGED = "flagged_below_persistence"
R_SELF_HARM = "self_harm_veto"
R_USER_END = "user_requested_end"
R_HARMFUL = "persistent_harmful"
R_ABUSE = "persistent_abuse"
R_ENDED = "already_ended"
R_DEGRADED = "degraded"
END_REASONS = (R_USER_END, R_HARMFUL, R_ABUSE)

DEFAULT_THRESHOLDS: dict[str, float] = {
    "harmful_request": 0.5,
    "abuse": 0.5,
    "end_request": 0.5,
    "self_harm_risk": 0.5,
    "redirect": 0.5,
}


@dataclass(frozen=True)
class PolicyConfig:
    thresholds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    min_flagged: int = 3
    min_redirections: int = 2
    window_turns: int = 12
    self_harm_lookback: int = 12
    end_on_request: bool = True

    def __post_init__(self) -> None:
        missing = set(DEFAULT_THRESHOLDS) - set(self.thresholds)
        if missing:
            raise ValueError(f"policy thresholds missing for: {sorted(missing)}")
        for name, value in self.thresholds.items():
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"threshold for {name} must be in [0, 1], got {value}")
        if self.min_flagged < 1 or self.min_redirections < 0 or self.window_turns < 1 or self.self_harm_lookback < 0:
            raise ValueError("policy counts must be positive (min_redirections, self_harm_lookback may be 0)")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PolicyConfig:
        known = {
            "thresholds",
            "min_flagged",
            "min_redirections",
            "window_turns",
            "self_harm_lookback",
            "end_on_request",
        }
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown policy keys: {sorted(unknown)}")
        kwargs = dict(d)
        kwargs["thresholds"] = {**DEFAULT_THRESHOLDS, **dict(d.get("thresholds") or {})}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["thresholds"] = dict(self.thresholds)
        return out

    def with_thresholds(self, thresholds: Mapping[str, float]) -> PolicyConfig:
        return PolicyConfig.from_dict({**self.to_dict(), "thresholds": {**self.thresholds, **thresholds}})


@dataclass
class PolicyState:
    """Per-branch state. Small, copyable (`copy()`) and JSON-serialisable (`to_dict`)."""

    next_index: int = 0
    #: (turn index, kinds) of flagged user turns still inside the window.
    flagged: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    #: Indices of assistant redirections still inside the window.
    redirects: list[int] = field(default_factory=list)
    last_self_harm: int | None = None
    end_turn: int | None = None
    end_reason: str | None = None
    end_evidence: tuple[int, ...] = ()

    def copy(self) -> PolicyState:
        return copy.deepcopy(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "next_index": self.next_index,
            "flagged": [[i, list(k)] for i, k in self.flagged],
            "redirects": list(self.redirects),
            "last_self_harm": self.last_self_harm,
            "end_turn": self.end_turn,
            "end_reason": self.end_reason,
            "end_evidence": list(self.end_evidence),
        }

    @classmethod
    def from_dict(cls, d: Any, config: PolicyConfig | None = None) -> PolicyState:
        """A state `to_dict` wrote, checked field by field; StateError (a ValueError) names what is wrong.

        Why so strict: states travel through clients (HTTP), and a state is what decides `end`. A forged
        `end_turn` would end every later turn, flags that were never raised would end a benign chat, and a
        missing veto would end an at-risk user's. Anything `to_dict` cannot have written is refused, and with
        `config` the window bounds the policy keeps are checked too.
        """
        if not isinstance(d, Mapping):
            raise StateError("policy", f"must be an object, got {type(d).__name__}")
        keys = set(d)
        if keys != _STATE_KEYS:
            missing, unknown = sorted(_STATE_KEYS - keys), sorted(str(k) for k in keys - _STATE_KEYS)
            raise StateError("policy", f"missing keys {missing}" if missing else f"unknown keys {unknown}")
        n = _index(d["next_index"], "policy.next_index", _MAX_INDEX + 1)
        flagged = _list(d["flagged"], "policy.flagged")
        items: list[tuple[int, tuple[str, ...]]] = []
        for j, f in enumerate(flagged):
            where = f"policy.flagged[{j}]"
            if not isinstance(f, list) or len(f) != 2:
                raise StateError(where, "must be [turn index, [kinds]]")
            kinds = _list(f[1], f"{where}[1]")
            if not kinds or len(set(kinds)) != len(kinds) or not set(kinds) <= set(FLAG_KINDS):
                raise StateError(f"{where}[1]", f"must be distinct kinds of {list(FLAG_KINDS)}")
            items.append((_index(f[0], f"{where}[0]", n), tuple(kinds)))
        redirects = [
            _index(r, f"policy.redirects[{j}]", n) for j, r in enumerate(_list(d["redirects"], "policy.redirects"))
        ]
        _increasing([i for i, _ in items], "policy.flagged")
        _increasing(redirects, "policy.redirects")
        last_sh = None if d["last_self_harm"] is None else _index(d["last_self_harm"], "policy.last_self_harm", n)
        end_turn = None if d["end_turn"] is None else _index(d["end_turn"], "policy.end_turn", n)
        reason, evidence_raw = d["end_reason"], _list(d["end_evidence"], "policy.end_evidence")
        if end_turn is None and (reason is not None or evidence_raw):
            raise StateError("policy.end_reason", "set although end_turn is null")
        if end_turn is not None and reason not in END_REASONS:
            raise StateError("policy.end_reason", f"must be one of {list(END_REASONS)} when end_turn is set")
        limit = n if end_turn is None else end_turn + 1
        evidence = [_index(e, f"policy.end_evidence[{j}]", limit) for j, e in enumerate(evidence_raw)]
        _increasing(evidence, "policy.end_evidence")
        if end_turn is not None and end_turn not in evidence:
            raise StateError("policy.end_evidence", "must include end_turn")
        if config is not None:
            _check_plausible(config, n, items, redirects, end_turn, reason, evidence)
        return cls(n, items, redirects, last_sh, end_turn, reason, tuple(evidence))


class StateError(ValueError):
    """A serialised state is not one this runtime wrote; `field` is where it first went wrong."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"state.{field_path}: {message}")
        self.field = field_path


#: Kinds a flagged turn can carry, and the keys `PolicyState.to_dict` writes (all of them, always).
FLAG_KINDS = ("harmful_request", "abuse")
_STATE_KEYS = {"next_index", "flagged", "redirects", "last_self_harm", "end_turn", "end_reason", "end_evidence"}
#: Turn indices beyond this are refused: no conversation gets there, and it keeps JSON integers small.
_MAX_INDEX = 10**12


def _check_plausible(
    config: PolicyConfig,
    n: int,
    flagged: list[tuple[int, tuple[str, ...]]],
    redirects: list[int],
    end_turn: int | None,
    reason: str | None,
    evidence: list[int],
) -> None:
    """What `step` under `config` can have left behind: turns inside the window, and an end whose evidence is
    what that reason needs. (Only a signature proves a state was written by us: serving/state.py.)"""
    if end_turn is None:  # an ended state stops forgetting (step returns early), a live one keeps the window
        lo = n - config.window_turns
        if (flagged and flagged[0][0] < lo) or (redirects and redirects[0] < lo):
            raise StateError("policy", f"holds turns older than the policy window ({config.window_turns} turns)")
        return
    if reason == R_USER_END:
        if evidence != [end_turn]:
            raise StateError("policy.end_evidence", "a user's end request is its own evidence")
        return
    flags = [i for i, _ in flagged if i in evidence]
    between = [r for r in redirects if r in evidence]
    if len(flags) < config.min_flagged or len(between) < config.min_redirections or end_turn not in flags:
        raise StateError(
            "policy.end_evidence",
            f"{reason} needs {config.min_flagged} flagged turns ending at end_turn "
            f"and {config.min_redirections} redirections among its evidence",
        )


def _index(value: Any, where: str, below: int) -> int:
    """`value` as a turn index in [0, below): an int, never a bool, a float or a string."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise StateError(where, f"must be an integer turn index, got {type(value).__name__}")
    if not 0 <= value < below:
        raise StateError(where, f"{value} is outside 0..{below - 1}")
    return value


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise StateError(where, f"must be a list, got {type(value).__name__}")
    return value


def _increasing(values: Sequence[int], where: str) -> None:
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise StateError(where, "turn indices must be strictly increasing")


@dataclass(frozen=True)
class Action:
    index: int
    role: str
    action: str
    reason: str
    evidence: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "role": self.role,
            "action": self.action,
            "reason": self.reason,
            "evidence": list(self.evidence),
        }


def step(config: PolicyConfig, state: PolicyState, role: str, scores: Mapping[str, float]) -> Action:
    """Advance `state` by one turn (mutating it) and return the action for that turn."""
    i = state.next_index
    state.next_index += 1
    if state.end_turn is not None:
        return Action(i, role, END, R_ENDED, state.end_evidence)
    th = config.thresholds
    # Forget what slid out of the window: keeps state size bounded by window_turns.
    lo = i - config.window_turns + 1
    state.flagged = [f for f in state.flagged if f[0] >= lo]
    state.redirects = [r for r in state.redirects if r >= lo]

    if role == "assistant":
        if scores.get("redirect", 0.0) >= th["redirect"]:
            state.redirects.append(i)
        return Action(i, role, CONTINUE, R_ASSISTANT)
    if role != "user":
        return Action(i, role, CONTINUE, R_SYSTEM)

    if scores.get("self_harm_risk", 0.0) >= th["self_harm_risk"]:
        state.last_self_harm = i
    kinds = tuple(k for k in ("harmful_request", "abuse") if scores.get(k, 0.0) >= th[k])
    if kinds:
        state.flagged.append((i, kinds))

    vetoed = state.last_self_harm is not None and i - state.last_self_harm <= config.self_harm_lookback
    decision: tuple[str, tuple[int, ...]] | None = None
    if config.end_on_request and scores.get("end_request", 0.0) >= th["end_request"]:
        decision = (R_USER_END, (i,))
    elif kinds and len(state.flagged) >= config.min_flagged:
        first = state.flagged[0][0]
        between = [r for r in state.redirects if first < r < i]
        if len(between) >= config.min_redirections:
            n_harm = sum("harmful_request" in k for _, k in state.flagged)
            n_abuse = sum("abuse" in k for _, k in state.flagged)
            reason = R_HARMFUL if n_harm >= n_abuse else R_ABUSE
            decision = (reason, tuple(sorted([f[0] for f in state.flagged] + between)))
    if decision is not None and vetoed:
        return Action(i, role, CONTINUE, R_SELF_HARM, (state.last_self_harm,))
    if decision is not None:
        state.end_turn, state.end_reason, state.end_evidence = i, decision[0], decision[1]
        return Action(i, role, END, decision[0], decision[1])
    if vetoed:
        return Action(i, role, CONTINUE, R_SELF_HARM, (state.last_self_harm,))
    if kinds:
        return Action(i, role, CONTINUE, R_FLAGGED, tuple(f[0] for f in state.flagged))
    return Action(i, role, CONTINUE, R_BENIGN)


def replay(
    config: PolicyConfig, roles: Sequence[str], scores: Iterable[Mapping[str, float]], *, stop_at_end: bool = True
) -> list[Action]:
    """Run a whole conversation through the policy as if live."""
    state = PolicyState()
    actions: list[Action] = []
    for role, s in zip(roles, scores, strict=True):
        a = step(config, state, role, s)
        actions.append(a)
        if stop_at_end and a.action == END:
            break
    return actions


def first_end(actions: Sequence[Action]) -> Action | None:
    return next((a for a in actions if a.action == END), None)


def gold_end_at(config: PolicyConfig, turns: Sequence[tuple[str, Sequence[str]]]) -> int | None:
    """The user turn at which the policy, fed the gold labels, first ends: the `end_at` label."""
    roles = [r for r, _ in turns]
    scores = [{label: 1.0 for label in labels} for _, labels in turns]
    end = first_end(replay(config, roles, scores))
    return None if end is None else end.index
