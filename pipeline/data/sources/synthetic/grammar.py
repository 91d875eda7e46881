"""A tiny template grammar: `[a|b|]` picks one option (empty = optional), `{slot}` draws a lexicon value.

Templates are compiled once at import into nested tuples so rendering 100k conversations stays cheap
(no regex work per utterance). Options may nest: `[i [really |]need|give me]`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

# A compiled sequence is a tuple of parts; a part is a literal str, a Choice, or a Slot.
Seq = tuple


class Choice:
    __slots__ = ("options",)

    def __init__(self, options: Sequence[Seq]) -> None:
        self.options = tuple(options)


class Slot:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class TemplateError(ValueError):
    """A template string is malformed (unbalanced brackets or braces)."""


def compile_template(text: str) -> Seq:
    """Compile one template string; raises TemplateError naming the template on bad syntax."""
    seq, pos = _parse_seq(text, 0, top=True)
    if pos != len(text):
        raise TemplateError(f"unbalanced ']' or '|' at {pos} in {text!r}")
    return seq


def _parse_seq(text: str, pos: int, *, top: bool) -> tuple[Seq, int]:
    parts: list = []
    buf: list[str] = []
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch == "[":
            if buf:
                parts.append("".join(buf))
                buf = []
            options: list[Seq] = []
            pos += 1
            while True:
                opt, pos = _parse_seq(text, pos, top=False)
                options.append(opt)
                if pos >= n:
                    raise TemplateError(f"unclosed '[' in {text!r}")
                if text[pos] == "|":
                    pos += 1
                    continue
                pos += 1  # the closing ']'
                break
            parts.append(Choice(options))
        elif ch in "|]":
            if top:
                raise TemplateError(f"stray {ch!r} at {pos} in {text!r}")
            break
        elif ch == "{":
            end = text.find("}", pos)
            if end < 0:
                raise TemplateError(f"unclosed '{{' in {text!r}")
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append(Slot(text[pos + 1 : end]))
            pos = end + 1
        else:
            buf.append(ch)
            pos += 1
    if buf:
        parts.append("".join(buf))
    return tuple(parts), pos


def slot_names(seq: Seq) -> set[str]:
    """Every slot a compiled template refers to (for validating the lexicon at import)."""
    names: set[str] = set()
    for part in seq:
        if isinstance(part, Slot):
            names.add(part.name)
        elif isinstance(part, Choice):
            for opt in part.options:
                names |= slot_names(opt)
    return names


def render(seq: Seq, rng: random.Random, slots: Mapping[str, tuple[Seq, ...]]) -> str:
    """Expand a compiled template; whitespace left by empty options is collapsed."""
    out: list[str] = []
    _render(seq, rng, slots, out)
    text = " ".join("".join(out).split())
    if " ," in text or " ?" in text or " ." in text or " !" in text:
        text = text.replace(" ,", ",").replace(" ?", "?").replace(" .", ".").replace(" !", "!")
    return text


def _render(seq: Seq, rng: random.Random, slots: Mapping[str, tuple[Seq, ...]], out: list[str]) -> None:
    for part in seq:
        if part.__class__ is str:
            out.append(part)
        elif part.__class__ is Choice:
            opts = part.options
            _render(opts[int(rng.random() * len(opts))], rng, slots, out)
        else:
            values = slots[part.name]
            _render(values[int(rng.random() * len(values))], rng, slots, out)
