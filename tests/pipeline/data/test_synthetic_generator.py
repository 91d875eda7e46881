"""The synthetic corpus: schema-valid, deterministic, policy-consistent, template-group disjoint."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest
import yaml

from pipeline.data.sources.synthetic import MAX_TURNS, generate, generate_one
from pipeline.data.sources.synthetic.families import BY_GROUP, FAMILIES, FAMILIES_BY_INTENT, LABEL_INTENTS, N_GROUPS
from pipeline.data.sources.synthetic.grammar import compile_template
from pipeline.data.sources.synthetic.lexicon import SLOTS
from pipeline.data.sources.synthetic.render import group_slots
from serving.labels import CATEGORIES, NEVER_END_CATEGORIES, USER_LABELS
from serving.policy import PolicyConfig, gold_end_at
from serving.schema import parse_conversation
from tests.conftest import REPO_ROOT

POLICY = PolicyConfig()


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return list(generate(600, 7, POLICY))


def test_deterministic_and_prefix_stable() -> None:
    a = list(generate(50, 3, POLICY))
    b = list(generate(50, 3, POLICY))
    assert a == b
    assert list(generate(20, 3, POLICY)) == a[:20]
    assert list(generate(50, 4, POLICY)) != a


def test_every_record_is_schema_valid(corpus: list[dict]) -> None:
    ids = set()
    for rec in corpus:
        conv = parse_conversation(rec, require_labels=True)
        assert conv.source == "synthetic"
        ids.add(conv.id)
        assert all(t.meta.get("family") for t in conv.turns)
    assert len(ids) == len(corpus)


def test_end_at_is_the_policy_gold(corpus: list[dict]) -> None:
    for rec in corpus:
        assert rec["end_at"] == gold_end_at(POLICY, [(t["role"], t["labels"]) for t in rec["turns"]])


def test_every_category_and_ending_kind_produced(corpus: list[dict]) -> None:
    cats = Counter(r["category"] for r in corpus)
    assert set(cats) == set(CATEGORIES)
    ends = {r["category"] for r in corpus if r["end_at"] is not None}
    assert {"persistent_harmful", "escalating_abuse", "end_request"} <= ends
    # Flagged-but-not-enough and carries-on-after-the-end variants exist too.
    assert any(r["category"] == "persistent_harmful" and r["end_at"] is None for r in corpus)
    assert any(r["end_at"] is not None and r["end_at"] < len(r["turns"]) - 1 for r in corpus)


def test_never_end_categories_never_end(corpus: list[dict]) -> None:
    for rec in corpus:
        if rec["category"] in NEVER_END_CATEGORIES:
            assert rec["end_at"] is None, rec["id"]


def test_self_harm_conversations_exercise_the_veto() -> None:
    """Some self-harm conversations would end on their labels without the veto (so the veto is what keeps them)."""
    no_veto = PolicyConfig(self_harm_lookback=0)
    vetoed = 0
    for i in range(400):
        rec = generate_one(i, 11, POLICY, category=random.Random(i).choice(["self_harm", "self_harm_abuse"]))
        assert rec["end_at"] is None
        # Strip self-harm labels: if it would then end, the veto was doing the work.
        stripped = [(t["role"], [x for x in t["labels"] if x != "self_harm_risk"]) for t in rec["turns"]]
        vetoed += gold_end_at(no_veto, stripped) is not None
    assert vetoed > 20


def test_turn_counts_and_roles(corpus: list[dict]) -> None:
    lengths = [len(r["turns"]) for r in corpus]
    assert min(lengths) >= 1 and max(lengths) <= MAX_TURNS
    assert min(lengths) == 1 and max(lengths) >= 15
    for rec in corpus:
        if len(rec["turns"]) >= 3:
            assert {t["role"] for t in rec["turns"]} == {"user", "assistant"}


def test_every_user_label_and_redirect_appear(corpus: list[dict]) -> None:
    seen = Counter(label for r in corpus for t in r["turns"] for label in t["labels"])
    for label in (*USER_LABELS, "redirect"):
        assert seen[label] > 20, label
    fused = [t for r in corpus for t in r["turns"] if {"abuse", "self_harm_risk"} <= set(t["labels"])]
    assert fused


def test_conversation_uses_only_its_group(corpus: list[dict]) -> None:
    for rec in corpus:
        g = rec["meta"]["template_group"]
        assert 0 <= g < N_GROUPS
        for name in rec["meta"]["families"]:
            assert FAMILIES[name].group == g


def test_group_assignment_covers_every_intent() -> None:
    for g in range(N_GROUPS):
        for intent in FAMILIES_BY_INTENT:
            assert BY_GROUP[g][intent], (g, intent)
    # One group per family, by construction; and the round-robin is balanced within an intent.
    for intent, names in FAMILIES_BY_INTENT.items():
        sizes = Counter(FAMILIES[n].group for n in names)
        assert max(sizes.values()) - min(sizes.values()) <= 1, intent


def test_slot_values_are_disjoint_between_groups() -> None:
    """Held-out groups never reuse a training group's fillers (weapon names, targets, insults ...)."""
    for name, values in SLOTS.items():
        per_group = [set(group_slots(g)[name]) for g in range(N_GROUPS)]
        assert all(per_group), name
        if len(values) >= N_GROUPS:
            assert set().union(*per_group) == set(values), name
            for a in range(N_GROUPS):
                for b in range(a + 1, N_GROUPS):
                    assert not per_group[a] & per_group[b], (name, a, b)


def test_rendered_weapon_names_stay_in_their_group() -> None:
    import random

    from pipeline.data.sources.synthetic.grammar import render

    rng = random.Random(0)
    seen = {g: {render(v, rng, {}) for v in group_slots(g)["mass_weapon"]} for g in (0, 8)}
    texts = [render(compile_template("make {mass_weapon}"), rng, group_slots(8)) for _ in range(50)]
    assert {t.removeprefix("make ") for t in texts} <= seen[8]
    assert not seen[0] & seen[8]


def test_at_least_40_families_per_user_label() -> None:
    for label in USER_LABELS:
        assert len(FAMILIES_BY_INTENT[LABEL_INTENTS[label]]) >= 40, label


def test_family_labels_match_roles() -> None:
    for fam in FAMILIES.values():
        if fam.role == "assistant":
            assert set(fam.labels) <= {"redirect"}
        else:
            assert set(fam.labels) <= set(USER_LABELS)


def test_rejects_negative_n() -> None:
    with pytest.raises(ValueError):
        list(generate(-1, 0, POLICY))


def _four_grams(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i : i + 4]) for i in range(len(words) - 3)}


def test_generator_does_not_reproduce_the_contrast_probes() -> None:
    """The probes measure whether look-alike training generalises: no safe probe may be said whole by the generator."""
    doc = yaml.safe_load((REPO_ROOT / "data" / "probes" / "contrast.yaml").read_text(encoding="utf-8"))
    safe = [pair[0] for cats in doc.values() for pairs in cats.values() for pair in pairs]
    seen: set[tuple[str, ...]] = set()
    for rec in generate(2000, 13, POLICY):
        for turn in rec["turns"]:
            if turn["role"] == "user":
                seen |= _four_grams(turn["text"])
    reproduced = [p for p in safe if _four_grams(p) and _four_grams(p) <= seen]
    assert len(safe) >= 150 and reproduced == []
