"""Result types the scorer returns, with a `to_dict` shape that never varies.

Clients (HTTP, the CLI, other programs) key on these fields, so every key is
always present (null when it does not apply) whatever path produced the result,
including the degraded one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from serving.policy import CONTINUE, END, R_DEGRADED, Action


@dataclass(frozen=True)
class TurnResult:
    """What the scorer decided for one turn, and why."""

    index: int
    role: str
    action: str
    reason: str
    evidence: tuple[int, ...] = ()
    #: Calibrated per-label probabilities; None when the turn could not be scored.
    scores: Mapping[str, float] | None = None
    degraded: bool = False
    error: str | None = None

    @classmethod
    def from_action(cls, action: Action, scores: Mapping[str, float] | None) -> TurnResult:
        return cls(action.index, action.role, action.action, action.reason, tuple(action.evidence), scores)

    @classmethod
    def failed(cls, index: int, role: Any, error: str) -> TurnResult:
        """The answer for a turn that could not be scored: continue, never end."""
        return cls(index, role if isinstance(role, str) else repr(role), CONTINUE, R_DEGRADED, (), None, True, error)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "role": self.role,
            "action": self.action,
            "reason": self.reason,
            "evidence": list(self.evidence),
            "scores": None if self.scores is None else dict(self.scores),
            "degraded": self.degraded,
            "error": self.error,
        }


@dataclass(frozen=True)
class Decision:
    """A whole conversation's outcome: the first `end` (if any), else continue."""

    id: str | None
    decision: str
    end_turn: int | None
    reason: str
    evidence: tuple[int, ...]
    turns: tuple[TurnResult, ...] = field(default_factory=tuple)

    @property
    def degraded(self) -> bool:
        return any(t.degraded for t in self.turns)

    @classmethod
    def from_turns(cls, conv_id: str | None, turns: Sequence[TurnResult]) -> Decision:
        """Summarise per-turn results.

        Ended: the ending turn's reason and evidence. Otherwise: the last user
        turn's reason (the state the conversation is in now; `degraded` if that
        turn could not be scored), or the last turn's when there is no user turn.
        """
        turns = tuple(turns)
        end = next((t for t in turns if t.action == END), None)
        if end is not None:
            return cls(conv_id, END, end.index, end.reason, end.evidence, turns)
        last = next((t for t in reversed(turns) if t.role == "user"), turns[-1] if turns else None)
        if last is None:
            return cls(conv_id, CONTINUE, None, "benign", (), turns)
        return cls(conv_id, CONTINUE, None, last.reason, last.evidence, turns)

    def to_dict(self) -> dict[str, Any]:
        """The full shape: the Python API's, and (with `notes`, serving/messages.py) the HTTP answer's and each
        `python -m serving score` output line's."""
        return {
            "id": self.id,
            "decision": self.decision,
            "end_turn": self.end_turn,
            "reason": self.reason,
            "evidence": list(self.evidence),
            "degraded": self.degraded,
            "turns": [t.to_dict() for t in self.turns],
        }
