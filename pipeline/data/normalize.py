"""Text normalisation applied to every turn in `prepare`.

The same surface form must reach the tokenizer at train time whatever the source's encoding habits, and a
hostile input (a 10 MB turn, zero-width characters) must neither stall the pipeline nor hide words.

Choices (documented because they change what the model sees):
- Unicode NFKC: full-width and compatibility forms fold to their plain letters (`ｉｄｉｏｔ` -> `idiot`), which
  undoes a common obfuscation. Emoji are kept.
- Control characters (Unicode Cc) are removed, except newline; tab and other whitespace become a space; CR/CRLF
  become newline. Format characters (Cf: zero-width space, bidi overrides, soft hyphen, BOM) are removed, except
  the zero-width joiner between non-word characters (emoji sequences); between letters it is removed too
  (`i\u200ddiot` -> `idiot`).
- Whitespace: runs of spaces collapse to one, spaces around newlines are dropped, 3+ newlines become 2, the
  text is stripped. Newlines are kept: they separate list items and paragraphs people write.
- Length: a turn longer than `max_chars` is cut (on a word boundary when one is near) and flagged by the caller
  in `meta.truncated`. Before any Unicode work, the raw text is first cut to `PRECUT_FACTOR * max_chars` so a
  10 MB turn costs the same as a short one.
"""

from __future__ import annotations

import re
import sys
import unicodedata

PRECUT_FACTOR = 4

_ZWJ = "\u200d"


# Cc except \n; Cf except ZWJ. Built once from the Unicode database of this Python, as ranges (fast to match).
def _removable_ranges() -> str:
    codes = [
        c
        for c in range(sys.maxunicode + 1)
        if unicodedata.category(chr(c)) in ("Cc", "Cf") and chr(c) not in "\n\t\r\u200d"
    ]
    parts: list[str] = []
    start = prev = codes[0]
    for c in [*codes[1:], -1]:
        if c != prev + 1:
            parts.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
            start = c
        prev = c
    return "".join(parts)


_REMOVE_RE = re.compile("[" + _removable_ranges() + "]")
_ASCII_CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ZWJ_IN_WORD_RE = re.compile(r"(?<=\w)\u200d|\u200d(?=\w)")
_HSPACE_RE = re.compile(r"[^\S\n]+")
_SPACE_NL_RE = re.compile(r" ?\n ?")
_MANY_NL_RE = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """NFKC, control/format characters removed, whitespace collapsed (see module doc)."""
    if text.isascii():
        if _ASCII_CTRL_RE.search(text):
            text = _ASCII_CTRL_RE.sub("", text)
    else:
        text = unicodedata.normalize("NFKC", text)
        text = _REMOVE_RE.sub("", text)
        if _ZWJ in text:
            text = _ZWJ_IN_WORD_RE.sub("", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\n" not in text:
        return " ".join(text.split())
    text = _HSPACE_RE.sub(" ", text)
    text = _SPACE_NL_RE.sub("\n", text)
    text = _MANY_NL_RE.sub("\n\n", text)
    return text.strip()


def truncate(text: str, max_chars: int) -> str:
    """Cut to at most `max_chars`, preferring the last space in the final 10 % so no word is split."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ", int(max_chars * 0.9))
    return (cut[:space] if space > 0 else cut).rstrip()


def normalize_turn_text(text: str, max_chars: int) -> tuple[str, bool, int]:
    """(normalised text, truncated?, original length in characters) for one turn."""
    original = len(text)
    precut = PRECUT_FACTOR * max_chars
    was_cut = original > precut
    if was_cut:
        text = text[:precut]
    out = normalize_text(text)
    if len(out) > max_chars:
        out = truncate(out, max_chars)
        was_cut = True
    return out, was_cut, original
