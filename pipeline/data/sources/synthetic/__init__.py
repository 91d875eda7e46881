"""The synthetic escalation corpus: whole conversations with per-turn labels and a policy-consistent `end_at`.

Entry point: `generate(n_conversations, seed, policy)`. Deterministic for (n, seed): conversation i depends
only on (seed, i), so a bigger corpus extends a smaller one. Each conversation draws every utterance from one
template group (`meta.template_group`), which lets the split stage keep test families out of training.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from pipeline.data.sources.synthetic.dialogues import CATEGORY_WEIGHTS, PLANNERS
from pipeline.data.sources.synthetic.families import FAMILIES, N_GROUPS, family_counts
from pipeline.data.sources.synthetic.render import render_step
from serving.labels import CATEGORIES, NEVER_END_CATEGORIES
from serving.policy import PolicyConfig, gold_end_at

__all__ = ["generate", "generate_one", "FAMILIES", "N_GROUPS", "MAX_TURNS", "family_counts"]

MAX_TURNS = 20

if set(PLANNERS) != set(CATEGORIES):
    raise RuntimeError(f"planners {sorted(PLANNERS)} do not match serving.labels.CATEGORIES {sorted(CATEGORIES)}")

_CATS = tuple(CATEGORIES)
_CUM: list[float] = []
_total = sum(CATEGORY_WEIGHTS[c] for c in _CATS)
_acc = 0.0
for _c in _CATS:
    _acc += CATEGORY_WEIGHTS[_c] / _total
    _CUM.append(_acc)


def _pick_category(rng: random.Random) -> str:
    r = rng.random()
    for cat, edge in zip(_CATS, _CUM, strict=True):
        if r < edge:
            return cat
    return _CATS[-1]


def _gold(policy: PolicyConfig, turns: list[dict], cache: dict | None) -> int | None:
    """`gold_end_at` on the gold labels, memoised per label pattern (plans repeat patterns a lot; the policy is pure)."""
    pattern = tuple((t["role"], tuple(t["labels"])) for t in turns)
    if cache is None:
        return gold_end_at(policy, pattern)
    hit = cache.get(pattern, -1)
    if hit == -1:
        hit = cache[pattern] = gold_end_at(policy, pattern)
    return hit


def generate_one(
    index: int, seed: int, policy: PolicyConfig, *, category: str | None = None, _cache: dict | None = None
) -> dict:
    """Conversation `index` of the corpus for `seed` (independent of how many are generated)."""
    rng = random.Random(seed * 1_000_003 + index)
    cat = category or _pick_category(rng)
    group = int(rng.random() * N_GROUPS)
    steps = PLANNERS[cat](rng).steps[:MAX_TURNS]
    turns = [render_step(s, group, rng) for s in steps]
    end_at = _gold(policy, turns, _cache)
    if end_at is not None and cat in NEVER_END_CATEGORIES:
        # A never-end plan that happened to satisfy the policy (e.g. the veto lapsed): cut it just before.
        turns = turns[:end_at]
        end_at = _gold(policy, turns, _cache)
    families = sorted({name for t in turns for name in t["meta"]["family"].split("+")})
    return {
        "id": f"syn-{index:06d}",
        "source": "synthetic",
        "turns": turns,
        "end_at": end_at,
        "category": cat,
        "meta": {"template_group": group, "families": families},
    }


def generate(n_conversations: int, seed: int, policy: PolicyConfig) -> Iterator[dict]:
    """Yield `n_conversations` records in the DESIGN.md schema (pass `parse_conversation(require_labels=True)`)."""
    if n_conversations < 0:
        raise ValueError(f"n_conversations must be >= 0, got {n_conversations}")
    cache: dict = {}  # per call: the policy object may differ between calls
    for i in range(n_conversations):
        yield generate_one(i, seed, policy, _cache=cache)
