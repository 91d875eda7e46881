"""Noise functions: deterministic for an rng, never empty, and doing what they say."""

from __future__ import annotations

import random

import pytest

from pipeline.data.sources.synthetic import noise
from pipeline.data.sources.synthetic.grammar import TemplateError, compile_template, render


def test_obfuscate_hides_profanity() -> None:
    rng = random.Random(0)
    outs = {noise.obfuscate("fuck you bitch", rng) for _ in range(50)}
    assert any("fuck" not in o for o in outs)
    assert all(o for o in outs)


def test_elongate_stretches_a_letter() -> None:
    rng = random.Random(1)
    out = noise.elongate("stop", rng)
    assert len(out) > 4 and out.replace("o", "").replace("p", "") in ("st", "s", "t")


def test_typo_changes_one_word_only() -> None:
    rng = random.Random(2)
    text = "please help me with my homework"
    changed = [noise.typo(text, rng) for _ in range(30)]
    assert any(c != text for c in changed)
    for c in changed:
        diff = sum(a != b for a, b in zip(c.split(), text.split(), strict=False))
        assert diff <= 1 or len(c.split()) == len(text.split())


def test_shorthand_and_leet_and_emoji() -> None:
    rng = random.Random(3)
    assert any(noise.shorthand("are you there please", rng) != "are you there please" for _ in range(10))
    assert any(ch.isdigit() for ch in "".join(noise.leet("hello sister", rng) for _ in range(10)))
    assert noise.add_emoji("hi", rng) != "hi"
    assert noise.strip_punct("don't stop!") == "dont stop"
    assert noise.shout("no") == "NO"


def test_apply_user_noise_is_deterministic_and_non_empty() -> None:
    a = [noise.apply_user_noise("you are so stupid", random.Random(i), heat=1.0) for i in range(100)]
    b = [noise.apply_user_noise("you are so stupid", random.Random(i), heat=1.0) for i in range(100)]
    assert a == b
    assert all(x.strip() for x in a)
    assert len(set(a)) > 20  # real variety


def test_grammar_choices_slots_and_errors() -> None:
    seq = compile_template("[a|b] {x}[| c]")
    outs = {render(seq, random.Random(i), {"x": (compile_template("y"),)}) for i in range(40)}
    assert outs == {"a y", "b y", "a y c", "b y c"}
    nested = compile_template("[i [really |]need|give me] it")
    outs = {render(nested, random.Random(i), {}) for i in range(40)}
    assert outs == {"i need it", "i really need it", "give me it"}
    for bad in ("[a|b", "a]b", "{slot"):
        with pytest.raises(TemplateError):
            compile_template(bad)
