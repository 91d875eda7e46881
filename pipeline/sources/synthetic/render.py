"""Turn a plan into text: every utterance is drawn from the conversation's template group only."""

from __future__ import annotations

import random

from pipeline.sources.synthetic.dialogues import Step
from pipeline.sources.synthetic.families import BY_GROUP, Family
from pipeline.sources.synthetic.grammar import render
from pipeline.sources.synthetic.lexicon import SLOTS
from pipeline.sources.synthetic.noise import apply_user_noise
from serving.labels import MODEL_LABELS

_JOINERS = (" ", ". ", ", ", " and ", "... ", "! ", " - ", " \n")
_pref_cache: dict[tuple[int, str, tuple[str, ...]], tuple[Family, ...]] = {}


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
    return render(seq, rng, SLOTS), fam


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
