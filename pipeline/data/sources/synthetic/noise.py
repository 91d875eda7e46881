"""Surface noise that real chat users produce: casing, texting shorthand, typos, leetspeak, obfuscated
profanity, elongation, emoji, missing or repeated punctuation.

Every function is pure given the rng, so the corpus stays deterministic for a seed. Noise is applied to
user turns (and lightly to nothing else) because that is where a deployed scorer meets it.
"""

from __future__ import annotations

import random

_SHORTHAND: dict[str, tuple[str, ...]] = {
    "you": ("u", "u", "you", "ya"),
    "your": ("ur", "ur", "yr"),
    "you're": ("ur", "youre", "your"),
    "are": ("r", "are"),
    "please": ("pls", "plz", "pleas"),
    "because": ("cuz", "bc", "coz", "becuase"),
    "okay": ("ok", "k", "okey"),
    "really": ("rly", "realy"),
    "don't": ("dont", "dnt", "do not"),
    "i'm": ("im", "i am", "iam"),
    "can't": ("cant", "cannot"),
    "what": ("wat", "wht", "what"),
    "know": ("kno", "knw", "know"),
    "the": ("teh", "da", "the", "the"),
    "to": ("2", "to", "to"),
    "for": ("4", "for", "for"),
    "with": ("w/", "wit", "with"),
    "tonight": ("2nite", "tonite"),
    "people": ("ppl", "peeps"),
    "going to": ("gonna",),
    "want to": ("wanna",),
    "something": ("smth", "sth", "something"),
}

#: Profane or insulting words and the obfuscated spellings people use to dodge filters.
OBFUSCATIONS: dict[str, tuple[str, ...]] = {
    "fuck": ("f*ck", "fck", "fuk", "phuck", "f**k", "fu*k", "fcuk", "fukk", "f u c k", "effing"),
    "fucking": ("f*cking", "fkn", "fuckin", "fcking", "fking", "f***ing", "effing"),
    "bitch": ("b1tch", "b*tch", "biatch", "bich", "b!tch", "btch", "beeyotch"),
    "shit": ("sh1t", "sh*t", "sht", "shiit", "$hit"),
    "ass": ("a$$", "@ss", "azz", "a**"),
    "asshole": ("a$$hole", "@sshole", "a**hole", "assh0le", "ahole"),
    "cunt": ("c*nt", "cnt", "kunt", "c u n t"),
    "dick": ("d1ck", "d*ck", "dik", "dikk"),
    "whore": ("wh0re", "wh*re", "hoe", "hore"),
    "slut": ("sl*t", "slvt", "sl00t"),
    "retarded": ("r3tarded", "r*tarded", "retrded", "tarded"),
    "idiot": ("id10t", "idoit", "idiiot"),
    "stupid": ("stupd", "stoopid", "stupid", "st00pid"),
    "bastard": ("b*stard", "basterd", "bstrd"),
    "kill": ("k1ll", "kil", "klll"),
    "die": ("d1e", "dye", "dieee"),
    "sex": ("s3x", "secks", "seks", "sexx"),
    "nudes": ("n00dz", "nudez", "nudes"),
    "cock": ("c0ck", "cawk", "cok"),
    "pussy": ("pu$$y", "pssy", "puss"),
    "moron": ("m0ron", "moran", "mor0n"),
    "loser": ("l0ser", "looser", "luser"),
}

_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
_KEY_NEIGHBOURS = {
    "a": "sq",
    "s": "ad",
    "d": "sf",
    "e": "wr",
    "r": "et",
    "t": "ry",
    "o": "ip",
    "i": "uo",
    "n": "bm",
    "u": "yi",
    "l": "k",
    "h": "gj",
    "m": "n",
    "y": "tu",
    "c": "xv",
    "g": "fh",
    "p": "o",
    "k": "jl",
}
_VOWELS = "aeiouy"
_TRAILING_EMOJI = (
    "🙂",
    "😂",
    "😭",
    "🙄",
    "😡",
    "👍",
    "💀",
    "🤬",
    "😒",
    "😊",
    "😤",
    "🥲",
    "😢",
    "🤔",
    "lol",
    "lmao",
    "xD",
    ":)",
    ":(",
    ":/",
)


def lower(text: str) -> str:
    return text.lower()


def shout(text: str) -> str:
    return text.upper()


def strip_punct(text: str) -> str:
    """Drop apostrophes and trailing sentence punctuation, as fast typists do ("dont", "im ok")."""
    return text.replace("'", "").rstrip(".!?,")


def repeat_punct(text: str, rng: random.Random) -> str:
    base = text.rstrip(".!?")
    mark = rng.choice(("!!", "!!!", "??", "?!", "!!!!", "...", "?!?"))
    return base + mark


def shorthand(text: str, rng: random.Random) -> str:
    """Texting shorthand: you -> u, please -> pls, because -> cuz."""
    words = text.split(" ")
    out = []
    for w in words:
        key = w.lower()
        opts = _SHORTHAND.get(key)
        out.append(opts[int(rng.random() * len(opts))] if opts and rng.random() < 0.7 else w)
    text = " ".join(out)
    if "going to" in text and rng.random() < 0.6:
        text = text.replace("going to", "gonna")
    if "want to" in text and rng.random() < 0.6:
        text = text.replace("want to", "wanna")
    return text


def typo(text: str, rng: random.Random) -> str:
    """One keyboard slip in a word of 4+ letters: swap, drop, double or neighbour key."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return text
    i = candidates[int(rng.random() * len(candidates))]
    w = words[i]
    j = 1 + int(rng.random() * (len(w) - 2))
    kind = int(rng.random() * 4)
    if kind == 0:
        w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    elif kind == 1:
        w = w[:j] + w[j + 1 :]
    elif kind == 2:
        w = w[:j] + w[j] + w[j:]
    else:
        near = _KEY_NEIGHBOURS.get(w[j].lower())
        if near:
            w = w[:j] + near[int(rng.random() * len(near))] + w[j + 1 :]
    words[i] = w
    return " ".join(words)


def leet(text: str, rng: random.Random) -> str:
    """Leetspeak on one word (or, rarely, all of them)."""
    words = text.split(" ")
    idx = range(len(words)) if rng.random() < 0.05 else [int(rng.random() * len(words))]
    for i in idx:
        words[i] = "".join(_LEET.get(c, c) if rng.random() < 0.7 else c for c in words[i])
    return " ".join(words)


def obfuscate(text: str, rng: random.Random) -> str:
    """Replace known profanity/insults with filter-dodging spellings ("f*ck", "b1tch")."""
    words = text.split(" ")
    changed = False
    for i, w in enumerate(words):
        core = w.strip(".,!?").lower()
        opts = OBFUSCATIONS.get(core)
        if opts and rng.random() < 0.8:
            words[i] = w.lower().replace(core, opts[int(rng.random() * len(opts))])
            changed = True
    return " ".join(words) if changed else text


def elongate(text: str, rng: random.Random) -> str:
    """Stretch a vowel or last letter of one word: "stop" -> "stoooop", "no" -> "nooo"."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if w.isalpha()]
    if not candidates:
        return text
    i = candidates[int(rng.random() * len(candidates))]
    w = words[i]
    positions = [k for k, c in enumerate(w) if c.lower() in _VOWELS] or [len(w) - 1]
    k = positions[-1] if rng.random() < 0.6 else positions[int(rng.random() * len(positions))]
    words[i] = w[: k + 1] + w[k] * (2 + int(rng.random() * 4)) + w[k + 1 :]
    return " ".join(words)


def add_emoji(text: str, rng: random.Random) -> str:
    e = _TRAILING_EMOJI[int(rng.random() * len(_TRAILING_EMOJI))]
    if rng.random() < 0.25:
        e = e * 2 if len(e) == 1 else e
    return f"{e} {text}" if rng.random() < 0.15 else f"{text} {e}"


def sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def apply_user_noise(text: str, rng: random.Random, *, heat: float = 0.0) -> str:
    """The noise mix for a user turn. `heat` (0..1) raises shouting, elongation and obfuscation for angry turns.

    Most real users type lower-case, without final punctuation; a minority write tidy sentences.
    """
    r = rng.random()
    if rng.random() < 0.55:
        text = shorthand(text, rng)
    if rng.random() < 0.12 + 0.2 * heat:
        text = obfuscate(text, rng)
    if rng.random() < 0.18:
        text = typo(text, rng)
        if rng.random() < 0.25:
            text = typo(text, rng)
    if rng.random() < 0.04:
        text = leet(text, rng)
    if rng.random() < 0.06 + 0.12 * heat:
        text = elongate(text, rng)
    if r < 0.58:
        text = lower(text)
    elif r < 0.62 + 0.12 * heat:
        text = shout(text)
    else:
        text = sentence_case(text)
    if rng.random() < 0.45:
        text = strip_punct(text)
    elif rng.random() < 0.1 + 0.25 * heat:
        text = repeat_punct(text, rng)
    if rng.random() < 0.08:
        text = add_emoji(text, rng)
    return text or "?"
