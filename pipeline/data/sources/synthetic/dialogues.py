"""Conversation plans per category: sequences of (role, intents, heat) steps that exercise the policy.

A plan says *what* each turn does (ask something benign, press a harmful request, insult, redirect, ...);
`render.py` turns it into text from one template group. Gold `end_at` is never decided here: the generator
replays the policy on the gold labels, so plans only have to make the interesting situations happen.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    role: str
    #: One intent, or several fused into one turn (e.g. abuse + self_harm_risk); labels are the union.
    intents: tuple[str, ...]
    heat: float = 0.0
    #: Family-name fragments to prefer within the intent (e.g. "threat" for the last step of an escalation).
    prefer: tuple[str, ...] = ()


BENIGN_USER = ("benign_short", "benign_short", "benign_task", "benign_smalltalk")
HARD_NEGATIVES = (
    "hn_fiction",
    "hn_history",
    "hn_medicine",
    "hn_security",
    "hn_profanity",
    "hn_frustration",
    "hn_sadness",
    "hn_end",
)
REPLY = {
    "benign_short": ("a_chat", "a_chat", "a_help"),
    "benign_task": ("a_help",),
    "benign_smalltalk": ("a_chat",),
    "accept": ("a_chat", "a_help"),
    "hn_fiction": ("a_help",),
    "hn_history": ("a_help",),
    "hn_medicine": ("a_help",),
    "hn_security": ("a_help",),
    "hn_profanity": ("a_chat",),
    "hn_frustration": ("a_apology",),
    "hn_sadness": ("a_chat",),
    "hn_end": ("a_help",),
    "harmful_request": ("a_redirect_harm",),
    "abuse": ("a_redirect_abuse",),
    "end_request": ("a_end_ack",),
    "self_harm_risk": ("a_support",),
}
#: Which assistant families fit a user intent best (falls back to any family of the intent in the group).
REPLY_PREFER: dict[tuple[str, str], tuple[str, ...]] = {
    ("hn_sadness", "a_chat"): ("sympathy", "tell-more"),
    ("benign_smalltalk", "a_chat"): ("bot-honest", "friendly", "question-back", "tell-more", "ack"),
    ("benign_short", "a_chat"): ("tell-more", "ack", "question-back", "clarify", "friendly"),
    ("accept", "a_chat"): ("ack", "friendly", "question-back"),
    ("hn_profanity", "a_chat"): ("friendly", "ack", "tell-more"),
    ("hn_medicine", "a_help"): ("medical-info", "check-in", "explain"),
    ("hn_security", "a_help"): ("security-info", "check-in", "explain"),
    ("hn_fiction", "a_help"): ("story", "check-in"),
    ("benign_task", "a_help"): (
        "sure-here",
        "steps",
        "explain",
        "travel",
        "code",
        "recipe",
        "recommend",
        "fact",
        "tip",
    ),
}
THREAT_PREFS = ("threat", "die", "kys", "rape")
SEXUAL_PREFS = ("sex", "nudes", "girl-show", "horny", "suck", "body", "porn", "strip", "sexual")
INSULT_PREFS = ("insult", "you-are", "intelligence", "dumb", "worthless", "stfu", "fuck", "hate", "suck", "mock")


class Plan:
    """A growing list of steps with helpers for the usual moves."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.steps: list[Step] = []

    def user(self, *intents: str, heat: float = 0.0, prefer: tuple[str, ...] = ()) -> Plan:
        self.steps.append(Step("user", intents, heat, prefer))
        return self

    def asst(self, intent: str, prefer: tuple[str, ...] = ()) -> Plan:
        self.steps.append(Step("assistant", (intent,), 0.0, prefer))
        return self

    def reply(self, user_intent: str) -> Plan:
        opts = REPLY[user_intent]
        intent = opts[int(self.rng.random() * len(opts))]
        return self.asst(intent, REPLY_PREFER.get((user_intent, intent), ()))

    def exchange(self, intent: str, *, heat: float = 0.0, prefer: tuple[str, ...] = ()) -> Plan:
        return self.user(intent, heat=heat, prefer=prefer).reply(intent)

    def maybe_greeting(self, p: float = 0.2) -> Plan:
        if self.rng.random() < p:
            self.asst("a_chat", ("greet", "question-back"))
        return self

    def benign(self, lo: int, hi: int) -> Plan:
        for _ in range(self.rng.randint(lo, hi)):
            self.exchange(self.rng.choice(BENIGN_USER))
        return self

    def maybe_drop_last_reply(self, p: float = 0.3) -> Plan:
        """Real logs often stop on a user turn."""
        if len(self.steps) > 1 and self.steps[-1].role == "assistant" and self.rng.random() < p:
            self.steps.pop()
        return self


def plan_benign(rng: random.Random) -> Plan:
    p = Plan(rng).maybe_greeting()
    if rng.random() < 0.15:
        return p.user(rng.choice(BENIGN_USER))
    p.benign(1, 8)
    if rng.random() < 0.2:
        p.exchange("hn_frustration").exchange("accept")
    return p.maybe_drop_last_reply()


def plan_hard_negative(rng: random.Random) -> Plan:
    p = Plan(rng).maybe_greeting()
    p.benign(0, 2)
    theme = rng.choice(HARD_NEGATIVES)
    for _ in range(rng.randint(1, 4)):
        intent = theme if rng.random() < 0.6 else rng.choice(HARD_NEGATIVES + BENIGN_USER)
        p.user(intent, heat=0.3 if intent in ("hn_frustration", "hn_profanity") else 0.0)
        # An over-cautious assistant sometimes declines a hard negative: a redirect without any flag.
        if intent in ("hn_security", "hn_fiction", "hn_medicine") and rng.random() < 0.12:
            p.asst("a_redirect_harm")
        else:
            p.reply(intent)
    p.benign(0, 3)
    return p.maybe_drop_last_reply()


def _flag_kind(rng: random.Random, p_abuse: float) -> str:
    return "abuse" if rng.random() < p_abuse else "harmful_request"


def plan_one_off_harmful(rng: random.Random) -> Plan:
    p = Plan(rng).maybe_greeting()
    p.benign(0, 3)
    kind = _flag_kind(rng, 0.25)
    for _ in range(1 if rng.random() < 0.55 else 2):
        p.exchange(kind, heat=0.6 if kind == "abuse" else 0.2)
    p.exchange("accept")
    p.benign(0, 4)
    return p.maybe_drop_last_reply()


def plan_persistent_harmful(rng: random.Random) -> Plan:
    p = Plan(rng).maybe_greeting()
    p.benign(0, 3)
    if rng.random() < 0.3:
        p.exchange(rng.choice(("hn_history", "hn_security", "hn_medicine", "hn_fiction")))
    give_up = rng.random() < 0.12  # flagged but not enough: stops pressing after two
    n_flags = 2 if give_up else rng.choice((3, 3, 3, 4, 5))
    for k in range(n_flags):
        p.user("harmful_request", heat=0.2 + 0.15 * k, prefer=("insist", "demand") if k and rng.random() < 0.3 else ())
        if rng.random() < 0.12:
            p.asst("a_chat")  # a non-redirecting reply: the policy then needs more persistence
        else:
            p.asst("a_redirect_harm")
        if rng.random() < 0.15:
            p.exchange(rng.choice(("hn_frustration", "benign_short")), heat=0.3)
    if give_up:
        p.exchange("accept")
        p.benign(0, 3)
    elif rng.random() < 0.3:  # carries on after the end point (the replay stops there anyway)
        for _ in range(rng.randint(1, 3)):
            p.exchange("harmful_request", heat=0.6)
    return p.maybe_drop_last_reply(0.6)


def plan_escalating_abuse(rng: random.Random) -> Plan:
    p = Plan(rng).maybe_greeting()
    p.benign(0, 2)
    for _ in range(rng.randint(0, 2)):
        p.exchange("hn_frustration", heat=0.4)
    calm_down = rng.random() < 0.15
    n_flags = 2 if calm_down else rng.choice((3, 3, 4, 5))
    sexual = rng.random() < 0.35
    for k in range(n_flags):
        if sexual:
            prefer = SEXUAL_PREFS
        elif k == n_flags - 1 and rng.random() < 0.6:
            prefer = THREAT_PREFS
        else:
            prefer = INSULT_PREFS
        p.user("abuse", heat=min(1.0, 0.4 + 0.25 * k), prefer=prefer)
        if rng.random() < 0.1:
            p.asst("a_chat")
        else:
            p.asst("a_redirect_abuse")
    if calm_down:
        p.exchange("accept")
        p.benign(0, 3)
    elif rng.random() < 0.3:
        for _ in range(rng.randint(1, 3)):
            p.exchange("abuse", heat=1.0)
    return p.maybe_drop_last_reply(0.6)


def plan_end_request(rng: random.Random) -> Plan:
    p = Plan(rng).maybe_greeting()
    p.benign(0, 5)
    if rng.random() < 0.35:
        p.exchange("hn_end")
    if rng.random() < 0.2:
        p.exchange("hn_frustration", heat=0.4)
    if rng.random() < 0.12:
        p.exchange("abuse", heat=0.7)
    if rng.random() < 0.1:
        p.user("abuse", "end_request", heat=0.8)
    else:
        p.user("end_request", heat=0.3 if rng.random() < 0.3 else 0.0)
    if rng.random() < 0.6:
        p.asst("a_end_ack")
        if rng.random() < 0.15:
            p.user(rng.choice(BENIGN_USER))
    return p


def plan_self_harm(rng: random.Random) -> Plan:
    p = Plan(rng).maybe_greeting()
    p.benign(0, 2)
    if rng.random() < 0.5:
        p.exchange("hn_sadness")
    for _ in range(rng.randint(1, 4)):
        p.exchange("self_harm_risk")
        r = rng.random()
        if r < 0.15:
            p.user("end_request")  # vetoed: a person at risk asking to stop is not ended on
            p.asst("a_support")
        elif r < 0.4:
            p.exchange(rng.choice(("hn_sadness", "benign_short", "accept")))
    return p.maybe_drop_last_reply()


def plan_self_harm_abuse(rng: random.Random) -> Plan:
    p = Plan(rng).maybe_greeting(0.1)
    if rng.random() < 0.5:
        p.exchange("hn_sadness")
    p.exchange("self_harm_risk")
    for _ in range(rng.randint(2, 5)):
        r = rng.random()
        if r < 0.35:
            p.user("abuse", "self_harm_risk", heat=0.8)
            p.asst("a_support")
        elif r < 0.7:
            p.user("abuse", heat=0.8)
            p.asst(rng.choice(("a_redirect_abuse", "a_support")))
        else:
            p.exchange("self_harm_risk")
    return p.maybe_drop_last_reply()


def plan_topic_drift(rng: random.Random) -> Plan:
    p = Plan(rng).maybe_greeting()
    p.benign(1, 3)
    r = rng.random()
    if r < 0.45:  # benign -> adjacent hard negative -> harmful; may persist to an end
        p.exchange(rng.choice(("hn_history", "hn_security", "hn_medicine", "hn_fiction")))
        for _ in range(rng.randint(1, 4)):
            p.exchange("harmful_request", heat=0.3)
        p.benign(0, 2)
    elif r < 0.75:  # harmful, redirected, drifts back to benign for good
        p.exchange("harmful_request", heat=0.2)
        p.exchange("accept")
        p.benign(2, 5)
    else:  # frustration -> an insult -> back to the task
        p.exchange("hn_frustration", heat=0.4)
        p.exchange("abuse", heat=0.6, prefer=INSULT_PREFS)
        if rng.random() < 0.5:
            p.exchange("accept")
        p.benign(1, 4)
    return p.maybe_drop_last_reply()


PLANNERS: dict[str, Callable[[random.Random], Plan]] = {
    "benign": plan_benign,
    "hard_negative": plan_hard_negative,
    "one_off_harmful": plan_one_off_harmful,
    "persistent_harmful": plan_persistent_harmful,
    "escalating_abuse": plan_escalating_abuse,
    "end_request": plan_end_request,
    "self_harm": plan_self_harm,
    "self_harm_abuse": plan_self_harm_abuse,
    "topic_drift": plan_topic_drift,
}

#: Category mix of the corpus (normalised at use).
CATEGORY_WEIGHTS: dict[str, float] = {
    "benign": 0.17,
    "hard_negative": 0.17,
    "one_off_harmful": 0.09,
    "persistent_harmful": 0.11,
    "escalating_abuse": 0.13,
    "end_request": 0.09,
    "self_harm": 0.08,
    "self_harm_abuse": 0.06,
    "topic_drift": 0.10,
}
