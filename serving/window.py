"""Turn-window rendering: how one turn is shown to the model, with its context.

This is the single implementation used by training, evaluation, export parity
checks and production. It works on token ids per turn so that a live scorer can
cache each turn's ids once and assemble the next window without re-tokenising the
conversation (cost independent of conversation length).

Layout: ``[CLS] context… [SEP] role: target turn [SEP]`` with segment ids 0 for the
context and 1 for the scored turn. The scored turn is kept whole up to
``max_turn_tokens``; the context is the concatenation of the previous
``max_turns`` turns, truncated from the left (oldest tokens go first).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tokenizers import Tokenizer


@dataclass(frozen=True)
class WindowSpec:
    #: Previous turns (both roles) visible as context.
    max_turns: int = 6
    #: Total sequence length including the three special tokens.
    max_tokens: int = 128
    #: Cap on the scored turn (and on each cached context turn).
    max_turn_tokens: int = 64
    truncation: str = "left"

    def __post_init__(self) -> None:
        if self.truncation != "left":
            raise ValueError(f"only left truncation is supported, got {self.truncation!r}")
        if self.max_turn_tokens + 3 > self.max_tokens:
            raise ValueError("max_turn_tokens + 3 special tokens must fit in max_tokens")
        if self.max_turns < 0:
            raise ValueError("max_turns must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowSpec:
        return cls(**{k: d[k] for k in ("max_turns", "max_tokens", "max_turn_tokens", "truncation") if k in d})

    @property
    def max_chars(self) -> int:
        """Characters tokenised per turn at most: bounds cost for megabyte turns.

        Generous (16 chars per token) so that no realistic turn loses tokens it
        would have kept.
        """
        return self.max_turn_tokens * 16


def clean_text(text: str) -> str:
    """`text` as valid Unicode: lone surrogates become U+FFFD, a surrogate pair written as two code points
    becomes the character it encodes.

    Why: a browser's `JSON.stringify` can send a lone surrogate (`"\\ud800"`), which the Rust tokenizer
    refuses. A turn that cannot be tokenised would go unscored, so one such character in every user turn
    would switch the guard off for that user. Cleaning it keeps the rest of the turn scored; it costs one
    UTF-8 encode of text that is already valid.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def turn_string(role: str, text: str) -> str:
    """The text the model sees for one turn: the role is part of the input."""
    return f"{role}: {clean_text(text)}"


class WindowEncoder:
    """Tokenises turns and assembles model windows, identically at train and serve time."""

    def __init__(self, tokenizer: Tokenizer, spec: WindowSpec, *, private_copy: bool = True) -> None:
        # A private copy, because we change its settings; `private_copy=False` is for a tokenizer no one else holds.
        tok = Tokenizer.from_str(tokenizer.to_str()) if private_copy else tokenizer
        tok.no_truncation()
        tok.no_padding()
        self.tokenizer = tok
        self.spec = spec
        self.cls_id = self._special(("[CLS]", "<s>"))
        self.sep_id = self._special(("[SEP]", "</s>"))
        pad = tok.token_to_id("[PAD]")
        if pad is None:
            pad = tok.token_to_id("<pad>")
        self.pad_id = 0 if pad is None else pad

    @classmethod
    def from_file(cls, path: str, spec: WindowSpec) -> WindowEncoder:
        """Why no copy: the tokenizer read here is ours alone, and a second parse of tokenizer.json cost ~30 ms
        of a scorer's cold start."""
        return cls(Tokenizer.from_file(str(path)), spec, private_copy=False)

    @classmethod
    def from_json(cls, text: str, spec: WindowSpec) -> WindowEncoder:
        """From tokenizer.json's text (the bytes a bundle load has just verified)."""
        return cls(Tokenizer.from_str(text), spec, private_copy=False)

    def _special(self, names: Sequence[str]) -> int:
        for name in names:
            idx = self.tokenizer.token_to_id(name)
            if idx is not None:
                return idx
        raise ValueError(f"tokenizer has none of the special tokens {list(names)}")

    def tokenize_turn(self, role: str, text: str) -> list[int]:
        """Token ids of one turn, without special tokens, capped at max_turn_tokens."""
        s = turn_string(role, text[: self.spec.max_chars])
        ids = self.tokenizer.encode(s, add_special_tokens=False).ids
        return ids[: self.spec.max_turn_tokens]

    def tokenize_turns(self, turns: Sequence[tuple[str, str]]) -> list[list[int]]:
        """Batch version of tokenize_turn (the Rust tokenizer parallelises it)."""
        strings = [turn_string(r, t[: self.spec.max_chars]) for r, t in turns]
        encs = self.tokenizer.encode_batch(strings, add_special_tokens=False)
        return [e.ids[: self.spec.max_turn_tokens] for e in encs]

    def assemble(self, context: Sequence[Sequence[int]], target: Sequence[int]) -> tuple[list[int], list[int]]:
        """Build (input_ids, token_type_ids) from cached per-turn ids.

        `context` holds the previous turns' ids, oldest first; only the last
        `max_turns` are used and the oldest tokens are dropped to fit.
        """
        target = list(target[: self.spec.max_turn_tokens])
        budget = self.spec.max_tokens - 3 - len(target)
        ctx: list[int] = []
        turns = list(context)[-self.spec.max_turns :] if self.spec.max_turns else []
        for ids in reversed(turns):
            if budget <= 0:
                break
            take = list(ids)[-budget:] if len(ids) > budget else list(ids)
            ctx = take + ctx
            budget -= len(take)
        input_ids = [self.cls_id, *ctx, self.sep_id, *target, self.sep_id]
        type_ids = [0] * (len(ctx) + 2) + [1] * (len(target) + 1)
        return input_ids, type_ids

    def encode_conversation(self, turns: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """One window per turn, each seeing only the turns before it (as live)."""
        return self.windows(self.tokenize_turns(turns), [role for role, _ in turns])  # type: ignore[return-value]

    def windows(
        self, per_turn: Sequence[Sequence[int] | None], roles: Sequence[str]
    ) -> list[tuple[list[int], list[int]] | None]:
        """The one conversation-to-windows path (training, evaluation, export parity, the scorer): each turn's
        window from the cached ids of the turns before it. System prompts are not part of the dialogue the
        model reads (never context); a turn without ids (it could not be read) gets None and is no context."""
        out: list[tuple[list[int], list[int]] | None] = []
        context: deque[Sequence[int]] = deque(maxlen=max(self.spec.max_turns, 1))
        for role, ids in zip(roles, per_turn, strict=True):
            if ids is None:
                out.append(None)
                continue
            out.append(self.assemble(context, ids))
            if role != "system":
                context.append(ids)
        return out


def pad_batch(
    windows: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int = 0
) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """Right-pad a batch to its longest window: (input_ids, attention_mask, token_type_ids)."""
    width = max((len(ids) for ids, _ in windows), default=0)
    ids_out, mask_out, types_out = [], [], []
    for ids, types in windows:
        pad = width - len(ids)
        ids_out.append([*ids, *([pad_id] * pad)])
        mask_out.append([1] * len(ids) + [0] * pad)
        types_out.append([*types, *([0] * pad)])
    return ids_out, mask_out, types_out
