"""One conversation branch's state: the policy state plus the cached token ids of the last turns.

The caller owns it (a server may hand it to its client and get it back with the next turn), so
`from_dict` trusts nothing: every field is checked, and a state written by another bundle is refused
(its token ids would mean other words to another tokenizer, its indices another policy's).
"""

from __future__ import annotations

import base64
import hmac
import json
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from serving.policy import PolicyConfig, PolicyState, StateError

STATE_VERSION = 1
_KEYS = {"version", "bundle", "max_turns", "policy", "context"}


@dataclass(frozen=True)
class StateLimits:
    """What a state of one bundle can hold: checked by `ConversationState.from_dict`."""

    bundle: str | None
    max_turns: int
    max_turn_tokens: int
    vocab_size: int
    policy: PolicyConfig | None = None


class ConversationState:
    """Policy state + the token ids of the last `max_turns` dialogue turns, for one branch.

    Small (bounded by the policy window and `max_turns`), copyable and JSON-serialisable, so a caller can
    store it between requests or fork it (a branch is `copy()` taken at that point). `bundle` is the digest
    of the bundle that wrote it (None for a state made in-process without one).
    """

    __slots__ = ("policy", "context", "max_turns", "bundle")

    def __init__(
        self,
        max_turns: int,
        policy: PolicyState | None = None,
        context: Iterable[Sequence[int]] = (),
        bundle: str | None = None,
    ) -> None:
        self.max_turns = int(max_turns)
        self.policy = policy if policy is not None else PolicyState()
        self.context: deque[list[int]] = deque((list(c) for c in context), maxlen=self.max_turns)
        self.bundle = bundle

    @property
    def next_index(self) -> int:
        return self.policy.next_index

    @property
    def ended(self) -> bool:
        return self.policy.end_turn is not None

    def copy(self) -> ConversationState:
        return ConversationState(self.max_turns, self.policy.copy(), self.context, self.bundle)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "bundle": self.bundle,
            "max_turns": self.max_turns,
            "policy": self.policy.to_dict(),
            "context": [list(c) for c in self.context],
        }

    @classmethod
    def from_dict(cls, d: Any, limits: StateLimits | None = None) -> ConversationState:
        """The state `to_dict` wrote; StateError (a ValueError) on anything else.

        Without `limits` only the shape is checked; `Guard.restore_state` passes its bundle's limits, so a
        state from another bundle, with more turns or longer turns than the window keeps, or with token ids
        outside the vocabulary, is refused.
        """
        if not isinstance(d, Mapping):
            raise StateError("", f"must be an object, got {type(d).__name__}")
        if d.get("version") != STATE_VERSION:
            raise StateError("version", f"not a conversation state of version {STATE_VERSION}")
        if set(d) != _KEYS:
            missing, unknown = sorted(_KEYS - set(d)), sorted(str(k) for k in set(d) - _KEYS)
            raise StateError("", f"missing keys {missing}" if missing else f"unknown keys {unknown}")
        bundle = d["bundle"]
        if bundle is not None and not isinstance(bundle, str):
            raise StateError("bundle", "must be a bundle digest or null")
        max_turns = d["max_turns"]
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or not 0 <= max_turns <= 1024:
            raise StateError("max_turns", "must be an integer in 0..1024")
        if limits is not None:
            if limits.bundle is not None and bundle != limits.bundle:
                raise StateError("bundle", "written by another bundle than the one loaded")
            if max_turns != limits.max_turns:
                raise StateError("max_turns", f"{max_turns} does not match this bundle's window ({limits.max_turns})")
        context = _context(d["context"], max_turns, limits)
        policy = PolicyState.from_dict(d["policy"], limits.policy if limits else None)
        return cls(max_turns, policy, context, bundle)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConversationState) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"ConversationState(next_index={self.next_index}, ended={self.ended}, context_turns={len(self.context)})"


def _context(raw: Any, max_turns: int, limits: StateLimits | None) -> list[list[int]]:
    if not isinstance(raw, list) or len(raw) > max_turns:
        raise StateError("context", f"must be a list of at most {max_turns} turns of token ids")
    vocab = limits.vocab_size if limits else None
    longest = limits.max_turn_tokens if limits else None
    for j, ids in enumerate(raw):
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise StateError(f"context[{j}]", "must be a list of token ids")
        if longest is not None and len(ids) > longest:
            raise StateError(f"context[{j}]", f"{len(ids)} tokens exceed the window's {longest} per turn")
        if ids and (min(ids) < 0 or (vocab is not None and max(ids) >= vocab)):
            raise StateError(f"context[{j}]", "token id outside the vocabulary")
    return raw


#: A sealed state is at most this long: a real one is a few hundred bytes (max_turns x max_turn_tokens ids).
MAX_SEALED_CHARS = 64 * 1024
_SEAL_CONTEXT = b"escalation-guard state v1\n"


def seal(state: ConversationState, key: bytes) -> str:
    """An opaque string for a client to hold and send back: the state's JSON, signed with HMAC-SHA256.

    Why signed: structure can be checked (`from_dict`), but only a signature proves that we wrote a state,
    e.g. that this conversation really did end at the turn it names. The key never leaves the servers; every
    replica with the same key can continue any conversation.
    """
    if len(key) < 16:
        raise ValueError("a state key must be at least 16 bytes")
    payload = base64.urlsafe_b64encode(json.dumps(state.to_dict(), separators=(",", ":")).encode()).rstrip(b"=")
    tag = base64.urlsafe_b64encode(hmac.digest(key, _SEAL_CONTEXT + payload, "sha256")).rstrip(b"=")
    return (payload + b"." + tag).decode("ascii")


def unseal(token: Any, key: bytes) -> Any:
    """The JSON of a state sealed with `key`; StateError when it is not one (altered, truncated, another key)."""
    if not isinstance(token, str) or len(token) > MAX_SEALED_CHARS or token.count(".") != 1:
        raise StateError("", "not a sealed state")
    payload, _, tag = token.encode("ascii", "replace").partition(b".")
    expected = base64.urlsafe_b64encode(hmac.digest(key, _SEAL_CONTEXT + payload, "sha256")).rstrip(b"=")
    if not hmac.compare_digest(tag, expected):
        raise StateError("", "signature does not match: the state was altered or sealed with another key")
    try:
        return json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    except (ValueError, RecursionError) as exc:
        raise StateError("", f"unreadable sealed state: {exc}") from None
