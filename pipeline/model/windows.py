"""Conversations -> model windows with label and role-mask arrays.

Every turn is rendered by `serving.window.WindowEncoder` (the renderer production uses), so what the
model is trained and evaluated on is exactly what it will see live. The loss for a turn covers only the
labels its role can carry (`serving.labels.label_mask`). A record with `meta.labelled_turns` (real sources
such as ConvAbuse: only the judged turn's labels are known) contributes only those turns; the others are
context (their `labels: []` means unknown, not benign).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from serving.labels import MODEL_LABELS, label_mask
from serving.schema import Conversation
from serving.window import WindowEncoder, turn_string

#: Negatives from these categories are "hard": they look like positives (profanity, dark fiction, a one-off
#: harmful ask, sadness). Training on them first is what keeps false terminations down.
HARD_CATEGORIES: frozenset[str] = frozenset(
    {"hard_negative", "one_off_harmful", "self_harm", "self_harm_abuse", "topic_drift"}
)


@dataclass
class WindowSet:
    """Parallel arrays, one row per scored (non-system, labelled) turn."""

    input_ids: list[list[int]] = field(default_factory=list)
    type_ids: list[list[int]] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0, len(MODEL_LABELS)), np.float32))
    mask: np.ndarray = field(default_factory=lambda: np.zeros((0, len(MODEL_LABELS)), np.float32))
    conv_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    turn_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    roles: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    hard: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.input_ids], dtype=np.int64)

    @property
    def positive(self) -> np.ndarray:
        """Rows with at least one positive label the role can carry."""
        return (self.labels * self.mask).sum(axis=1) > 0

    def subset(self, idx: Sequence[int] | np.ndarray) -> WindowSet:
        idx = np.asarray(idx, dtype=np.int64)
        return WindowSet(
            input_ids=[self.input_ids[i] for i in idx],
            type_ids=[self.type_ids[i] for i in idx],
            labels=self.labels[idx],
            mask=self.mask[idx],
            conv_index=self.conv_index[idx],
            turn_index=self.turn_index[idx],
            roles=[self.roles[i] for i in idx],
            categories=[self.categories[i] for i in idx],
            hard=self.hard[idx],
        )


def _label_vector(labels: Sequence[str]) -> list[float]:
    return [1.0 if name in labels else 0.0 for name in MODEL_LABELS]


def _masked(role: str, label_subset: Sequence[str] | None) -> list[float]:
    m = list(label_mask(role))
    if label_subset is not None:
        m = [v if name in label_subset else 0.0 for v, name in zip(m, MODEL_LABELS, strict=True)]
    return m


def build_windows(
    conversations: Sequence[Conversation],
    encoder: WindowEncoder,
    *,
    label_subset: Sequence[str] | None = None,
    keep_unscored: bool = False,
) -> WindowSet:
    """One window per scored turn; `label_subset` restricts the loss to some labels (e.g. ConvAbuse: abuse).

    `keep_unscored` keeps rows whose mask is all zero (for replay, where every user/assistant turn needs
    a score); training drops them.
    """
    ws = WindowSet()
    labels, masks, conv_idx, turn_idx, hard = [], [], [], [], []
    for ci, conv in enumerate(conversations):
        windows = encoder.encode_conversation([(t.role, t.text) for t in conv.turns])
        category = conv.category or "unknown"
        known = conv.meta.get("labelled_turns")
        known = None if known is None else {int(i) for i in known}
        for ti, (turn, (ids, types)) in enumerate(zip(conv.turns, windows, strict=True)):
            if turn.role == "system":
                continue
            m = _masked(turn.role, label_subset)
            if known is not None and ti not in known:
                m = [0.0] * len(MODEL_LABELS)
            if not keep_unscored and not any(m):
                continue
            y = _label_vector(turn.labels)
            is_pos = any(a * b for a, b in zip(y, m, strict=True))
            ws.input_ids.append(ids)
            ws.type_ids.append(types)
            labels.append(y)
            masks.append(m)
            conv_idx.append(ci)
            turn_idx.append(ti)
            ws.roles.append(turn.role)
            ws.categories.append(category)
            hard.append(not is_pos and (category in HARD_CATEGORIES or bool(turn.meta.get("hard_negative"))))
    n_labels = len(MODEL_LABELS)
    ws.labels = np.asarray(labels, dtype=np.float32).reshape(-1, n_labels)
    ws.mask = np.asarray(masks, dtype=np.float32).reshape(-1, n_labels)
    ws.conv_index = np.asarray(conv_idx, dtype=np.int64)
    ws.turn_index = np.asarray(turn_idx, dtype=np.int64)
    ws.hard = np.asarray(hard, dtype=bool)
    return ws


def window_texts(conversations: Sequence[Conversation], ws: WindowSet, max_turns: int) -> tuple[list[str], list[str]]:
    """(context, target) strings per window, from the same turn strings the encoder tokenises.

    For the TF-IDF baseline: it sees the same turns (the last `max_turns` non-system turns before the
    scored one) as the transformer, without the token cap.
    """
    contexts, targets = [], []
    for ci, ti in zip(ws.conv_index, ws.turn_index, strict=True):
        turns = conversations[int(ci)].turns
        before = [t for t in turns[: int(ti)] if t.role != "system"]
        before = before[-max_turns:] if max_turns else []
        contexts.append(" \n ".join(turn_string(t.role, t.text) for t in before))
        targets.append(turn_string(turns[int(ti)].role, turns[int(ti)].text))
    return contexts, targets


def _stratified_take(groups: dict[tuple, list[int]], budget: int, rng: np.random.Generator) -> list[int]:
    """Take `budget` rows spread over groups in proportion to their size (largest remainder)."""
    total = sum(len(v) for v in groups.values())
    if budget >= total:
        return [i for v in groups.values() for i in v]
    if budget <= 0:
        return []
    keys = sorted(groups)
    exact = {k: budget * len(groups[k]) / total for k in keys}
    take = {k: int(np.floor(exact[k])) for k in keys}
    left = budget - sum(take.values())
    for k in sorted(keys, key=lambda k: exact[k] - take[k], reverse=True)[:left]:
        take[k] += 1
    out: list[int] = []
    for k in keys:
        members = np.array(groups[k])
        out.extend(rng.choice(members, size=take[k], replace=False).tolist())
    return out


def select_training_windows(
    ws: WindowSet,
    max_windows: int | None,
    seed: int,
    *,
    min_negative_share: float,
    hard_share: float,
) -> np.ndarray:
    """Indices of the training subsample: positives first, then hard negatives, then stratified negatives.

    CPU fine-tuning budget is a few thousand windows; most turns are easy benign ones, so spending it on
    every positive and on the negatives that look like positives buys the most (up to `hard_share` of the
    negative budget; the rest is spread over roles and categories so that ordinary turns, e.g. the benign
    opening of an escalating conversation, are still seen). When positives alone
    exceed the budget they are subsampled stratified by label combination and role, keeping at least
    `min_negative_share` of the budget for negatives.
    """
    n = len(ws)
    if max_windows is None or max_windows <= 0 or max_windows >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    pos_mask = ws.positive
    pos = np.flatnonzero(pos_mask)
    neg_budget_min = int(round(max_windows * min_negative_share))
    pos_budget = min(len(pos), max_windows - min(neg_budget_min, int((~pos_mask).sum())))
    if pos_budget < len(pos):
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i in pos:
            groups[(ws.roles[i], tuple((ws.labels[i] * ws.mask[i]).astype(int).tolist()))].append(int(i))
        chosen_pos = _stratified_take(groups, pos_budget, rng)
    else:
        chosen_pos = pos.tolist()
    budget = max_windows - len(chosen_pos)
    hard = np.flatnonzero(~pos_mask & ws.hard)
    hard_budget = int(round(budget * hard_share))
    if len(hard) > hard_budget:
        hard = rng.choice(hard, size=hard_budget, replace=False)
    budget -= len(hard)
    taken = set(hard.tolist())
    rest: dict[tuple, list[int]] = defaultdict(list)
    for i in np.flatnonzero(~pos_mask):
        if int(i) not in taken:
            rest[(ws.roles[i], ws.categories[i])].append(int(i))
    chosen_neg = hard.tolist() + _stratified_take(rest, budget, rng)
    return np.sort(np.asarray(chosen_pos + chosen_neg, dtype=np.int64))


def pos_weight(ws: WindowSet, cap: float = 20.0) -> np.ndarray:
    """neg/pos per label over the rows where the label applies, capped (BCE pos_weight)."""
    pos = (ws.labels * ws.mask).sum(axis=0)
    neg = ((1 - ws.labels) * ws.mask).sum(axis=0)
    return np.clip(np.where(pos > 0, neg / np.maximum(pos, 1), 1.0), 1.0, cap).astype(np.float32)


def length_buckets(
    indices: Sequence[int], lengths: np.ndarray, batch_size: int, rng: np.random.Generator, *, pool: int = 50
) -> list[list[int]]:
    """Batches of similar length: shuffle, sort within pools of `pool` batches, shuffle the batches.

    Dynamic padding then wastes little compute: the biggest single speed-up on CPU.
    """
    idx = list(indices)
    out: list[list[int]] = []
    chunk = batch_size * pool
    for start in range(0, len(idx), chunk):
        part = sorted(idx[start : start + chunk], key=lambda i: lengths[i])
        out.extend(part[j : j + batch_size] for j in range(0, len(part), batch_size))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def swap_contexts(
    ws: WindowSet, encoder: WindowEncoder, share: float, seed: int, *, empty_share: float = 0.2
) -> WindowSet:
    """A copy of `ws` where `share` of the rows see another row's context (or none) before their own turn.

    Why: synthetic labels belong to the turn itself, but inside a conversation the turns around a flagged
    turn are mostly flagged too, so a model learns "abusive context -> abusive turn" and flags the "sorry"
    or "ok thanks" that follows an insult (the largest source of false terminations we measured).
    Pairing turns with contexts drawn from other conversations keeps the labels true and breaks that
    shortcut. `empty_share` of the swapped rows get no context (conversation openings). Rows keep their
    labels, masks and bookkeeping; only `input_ids` / `type_ids` change. Real sources whose annotators
    judged a turn in its context should leave `share` at 0.
    """
    if share <= 0 or len(ws) < 2:
        return ws
    rng = np.random.default_rng(seed)
    n = len(ws)
    rows = np.flatnonzero(rng.random(n) < share)
    donors = rng.integers(0, n, size=len(rows))
    empty = rng.random(len(rows)) < empty_share
    out = ws.subset(np.arange(n))
    for r, d, e in zip(rows.tolist(), donors.tolist(), empty.tolist(), strict=True):
        target = _target_ids(ws.input_ids[r], ws.type_ids[r])
        context = [] if e or d == r else [_context_ids(ws.input_ids[d], ws.type_ids[d])]
        out.input_ids[r], out.type_ids[r] = encoder.assemble(context, target)
    return out


def concat_windows(a: WindowSet, b: WindowSet) -> WindowSet:
    """Rows of `a` then rows of `b`."""
    return WindowSet(
        input_ids=[*a.input_ids, *b.input_ids],
        type_ids=[*a.type_ids, *b.type_ids],
        labels=np.concatenate([a.labels, b.labels]),
        mask=np.concatenate([a.mask, b.mask]),
        conv_index=np.concatenate([a.conv_index, b.conv_index]),
        turn_index=np.concatenate([a.turn_index, b.turn_index]),
        roles=[*a.roles, *b.roles],
        categories=[*a.categories, *b.categories],
        hard=np.concatenate([a.hard, b.hard]),
    )


def role_echo_windows(
    ws: WindowSet,
    conversations: Sequence[Conversation],
    encoder: WindowEncoder,
    n: int,
    seed: int,
    label_subset: Sequence[str] | None = None,
) -> WindowSet:
    """`n` user-role rows whose text is one of the training split's own assistant refusals, labelled benign.

    Why: no synthetic user ever says "let's talk about something else" or "I can't help with that", so the
    user-side heads never learnt what refusal language means in a user's mouth, and scored a user who accepts
    a refusal in those words 0.97-1.00 `harmful_request` (the test split's false terminations). A user who
    echoes a refusal asks for nothing harmful and insults no one (DESIGN.md's definitions): all user labels 0.
    Texts come only from `ws`'s own rows (the training split), half with another row's context, half alone.
    """
    rng = np.random.default_rng(seed)
    j = MODEL_LABELS.index("redirect")
    texts = sorted(
        {
            conversations[c].turns[t].text
            for c, t, role, y in zip(ws.conv_index, ws.turn_index, ws.roles, ws.labels[:, j], strict=True)
            if role == "assistant" and y > 0
        }
    )
    out = WindowSet()
    if n <= 0 or not texts:
        return out
    picks = rng.choice(len(texts), size=n, replace=n > len(texts))
    donors = rng.integers(0, len(ws), size=n)
    alone = rng.random(n) < 0.5
    m = _masked("user", label_subset)
    for k, d, a in zip(picks.tolist(), donors.tolist(), alone.tolist(), strict=True):
        context = [] if a else [_context_ids(ws.input_ids[d], ws.type_ids[d])]
        ids, types = encoder.assemble(context, encoder.tokenize_turn("user", texts[k]))
        out.input_ids.append(ids)
        out.type_ids.append(types)
        out.roles.append("user")
        out.categories.append("role_echo")
    out.labels = np.zeros((n, len(MODEL_LABELS)), np.float32)
    out.mask = np.tile(np.asarray(m, np.float32), (n, 1))
    out.conv_index = np.full(n, -1, np.int64)
    out.turn_index = np.full(n, -1, np.int64)
    out.hard = np.ones(n, bool)
    return out


def _context_ids(ids: Sequence[int], types: Sequence[int]) -> list[int]:
    """The context segment of a window built by `WindowEncoder.assemble`: between [CLS] and the first [SEP]."""
    n_ctx = len(types) - sum(types) - 2  # segment 0 = [CLS] + context + [SEP]
    return list(ids[1 : 1 + n_ctx])


def _target_ids(ids: Sequence[int], types: Sequence[int]) -> list[int]:
    """The scored turn's ids: segment 1 without its closing [SEP]."""
    n_target = sum(types) - 1
    start = len(types) - sum(types)
    return list(ids[start : start + n_target])
