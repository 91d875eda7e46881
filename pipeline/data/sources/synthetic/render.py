"""Turn a plan into text: every utterance is drawn from the conversation's template group only."""

from __future__ import annotations

import random
from collections.abc import Mapping

from pipeline.data.sources.synthetic.dialogues import Step
from pipeline.data.sources.synthetic.families import BY_GROUP, N_GROUPS, Family
from pipeline.data.sources.synthetic.grammar import Seq, render
from pipeline.data.sources.synthetic.lexicon import SLOTS
from pipeline.data.sources.synthetic.noise import apply_user_noise
from serving.labels import MODEL_LABELS

_JOINERS = (" ", ". ", ", ", " and ", "... ", "! ", " - ", " \n")
_pref_cache: dict[tuple[int, str, tuple[str, ...]], tuple[Family, ...]] = {}
_slot_cache: dict[int, dict[str, tuple[Seq, ...]]] = {}


def group_slots(group: int) -> Mapping[str, tuple[Seq, ...]]:
    """The slot values one template group may use: value k of every slot belongs to group k % N_GROUPS.

    Why: held-out groups must not share fillers with training either. With shared weapon names and targets,
    an n-gram baseline recognised test turns by their fillers and beat the transformer on harmful_request.
    A slot with fewer than N_GROUPS values cannot cover every group; those groups reuse value g % len.
    """
    hit = _slot_cache.get(group)
    if hit is None:
        hit = {
            name: tuple(v for k, v in enumerate(values) if k % N_GROUPS == group) or (values[group % len(values)],)
            for name, values in SLOTS.items()
        }
        _slot_cache[group] = hit
    return hit


def _candidates(group: int, intent: str, prefer: tuple[str, ...]) -> tuple[Family, ...]:
    fams = BY_GROUP[group][intent]
    if not prefer:
        return fams
    key = (group, intent, prefer)
    hit = _pref_cache.get(key)
    if hit is None:
        hit = tuple(f for f in fams if any(p in f.name for p in prefer)) or fams
        _pref_cache[key] = hit
    return hit


def _utterance(group: int, intent: str, prefer: tuple[str, ...], rng: random.Random) -> tuple[str, Family]:
    fams = _candidates(group, intent, prefer) if prefer else BY_GROUP[group][intent]
    fam = fams[int(rng.random() * len(fams))]
    seq = fam.templates[int(rng.random() * len(fam.templates))]
    return render(seq, rng, group_slots(group)), fam


def render_step(step: Step, group: int, rng: random.Random) -> dict:
    """One turn dict in the schema: role, text, labels (model order), meta.family."""
    if len(step.intents) == 1:
        text, fam = _utterance(group, step.intents[0], step.prefer, rng)
        labels = list(fam.labels)
        family = fam.name
    else:
        texts: list[str] = []
        names: list[str] = []
        label_set: set[str] = set()
        for intent in step.intents:
            t, fam = _utterance(group, intent, step.prefer, rng)
            texts.append(t)
            names.append(fam.name)
            label_set.update(fam.labels)
        if rng.random() < 0.5:
            texts.reverse()
        text = _JOINERS[int(rng.random() * len(_JOINERS))].join(texts).strip()
        labels = [name for name in MODEL_LABELS if name in label_set]
        family = "+".join(names)
    if step.role == "user":
        text = apply_user_noise(text, rng, heat=step.heat)
    return {"role": step.role, "text": text, "labels": labels, "meta": {"family": family}}
