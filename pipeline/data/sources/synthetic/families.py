"""The family registry: every template family with its intent, role, labels and template group.

A family is one way of saying something (a style, a pretext, a register); its templates are paraphrases.
Families, not sentences, are the unit of generalisation: each is assigned to one of `N_GROUPS` template
groups, round-robin over the sorted family names of each intent, so every group holds families of every
intent and the split stage can hold whole groups out (test families are never seen in training).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.data.sources.synthetic import (
    families_abuse,
    families_assistant,
    families_benign,
    families_end,
    families_harmful,
    families_self_harm,
)
from pipeline.data.sources.synthetic.grammar import Seq, compile_template, slot_names
from pipeline.data.sources.synthetic.lexicon import SLOTS

N_GROUPS = 10


@dataclass(frozen=True)
class Family:
    name: str  # "<intent>/<family-name>"
    intent: str
    role: str
    labels: tuple[str, ...]
    templates: tuple[Seq, ...]
    group: int


# (intent, role, labels, {family-name: [templates]}); families whose name ends in "+abuse" add that label.
_BLOCKS: tuple[tuple[str, str, tuple[str, ...], Mapping[str, list[str]]], ...] = (
    ("harmful_request", "user", ("harmful_request",), families_harmful.HARMFUL),
    ("harmful_request", "user", ("harmful_request", "abuse"), families_harmful.HARMFUL_ABUSE),
    ("abuse", "user", ("abuse",), families_abuse.ABUSE),
    ("end_request", "user", ("end_request",), families_end.END),
    ("self_harm_risk", "user", ("self_harm_risk",), families_self_harm.SELF_HARM),
    ("benign_short", "user", (), families_benign.SHORT),
    ("benign_task", "user", (), families_benign.TASK),
    ("benign_smalltalk", "user", (), families_benign.SMALLTALK),
    ("accept", "user", (), families_benign.ACCEPT),
    ("hn_fiction", "user", (), families_benign.FICTION),
    ("hn_history", "user", (), families_benign.HISTORY),
    ("hn_medicine", "user", (), families_benign.MEDICINE),
    ("hn_security", "user", (), families_benign.SECURITY),
    ("hn_profanity", "user", (), families_benign.PROFANITY),
    ("hn_frustration", "user", (), families_benign.FRUSTRATION),
    ("hn_sadness", "user", (), families_self_harm.SADNESS),
    ("hn_end", "user", (), families_end.END_NEGATIVE),
    ("a_help", "assistant", (), families_assistant.HELP),
    ("a_chat", "assistant", (), families_assistant.CHAT),
    ("a_redirect_harm", "assistant", ("redirect",), families_assistant.REDIRECT_HARM),
    ("a_redirect_abuse", "assistant", ("redirect",), families_assistant.REDIRECT_ABUSE),
    ("a_support", "assistant", (), families_assistant.SUPPORT),
    ("a_end_ack", "assistant", (), families_assistant.END_ACK),
    ("a_apology", "assistant", (), families_assistant.APOLOGY),
)

#: The user intents that carry each user label (for the >= 40 families per label bar).
LABEL_INTENTS: dict[str, str] = {
    "harmful_request": "harmful_request",
    "abuse": "abuse",
    "end_request": "end_request",
    "self_harm_risk": "self_harm_risk",
}


def _build() -> tuple[dict[str, Family], dict[str, list[str]]]:
    raw: dict[str, list[tuple[str, str, tuple[str, ...], list[str]]]] = {}
    for intent, role, labels, fams in _BLOCKS:
        for key, templates in fams.items():
            raw.setdefault(intent, []).append((f"{intent}/{key}", role, labels, templates))
    families: dict[str, Family] = {}
    by_intent: dict[str, list[str]] = {}
    for intent, entries in raw.items():
        entries.sort(key=lambda e: e[0])
        for idx, (name, role, labels, templates) in enumerate(entries):
            if name in families:
                raise ValueError(f"duplicate family name {name}")
            compiled = tuple(compile_template(t) for t in templates)
            for seq in compiled:
                unknown = slot_names(seq) - set(SLOTS)
                if unknown:
                    raise ValueError(f"family {name}: unknown slots {sorted(unknown)}")
            families[name] = Family(name, intent, role, labels, compiled, idx % N_GROUPS)
            by_intent.setdefault(intent, []).append(name)
    return families, by_intent


FAMILIES, FAMILIES_BY_INTENT = _build()
INTENTS: tuple[str, ...] = tuple(sorted(FAMILIES_BY_INTENT))

#: BY_GROUP[group][intent] -> tuple of families; what a conversation of that group may draw from.
BY_GROUP: list[dict[str, tuple[Family, ...]]] = [
    {
        intent: tuple(FAMILIES[n] for n in names if FAMILIES[n].group == g)
        for intent, names in FAMILIES_BY_INTENT.items()
    }
    for g in range(N_GROUPS)
]


def family_counts() -> dict[str, int]:
    """Number of families per intent (reported by the probe and checked by tests)."""
    return {intent: len(names) for intent, names in sorted(FAMILIES_BY_INTENT.items())}
