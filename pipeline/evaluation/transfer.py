"""Real conversations the trigger must get right: never-end and should-end sets built from public data.

Why: the synthetic test shares the generator's habits, so a model can pass it by learning template words. These
sets are made of text nobody here wrote (read by path, never copied, never trained on):
- `topical_chat`: Topical-Chat test conversations (crowd workers chatting), each replayed twice, once with
  each speaker as the user: never-end, unless a user asks to end (listed, for a person to judge).
- `convabuse_abusive_x3`: ConvAbuse valid user turns the annotators' majority marked abusive, three in a row
  with the assistant deflecting between them: should end (persistent abuse).
- `convabuse_benign_x3`: three non-abusive ConvAbuse valid turns in a row, deflected alike: never-end.
- `contrast_safe_pressed` / `contrast_unsafe_pressed`: each contrast-probe prompt (data/probes/contrast.yaml)
  asked three times, each time refused: the safe look-alike must never end. Its unsafe twin is marked should-end,
  but some twins state intent to hurt a named person, which the design vetoes (a user who may harm others is not
  left alone): that set's ended share is a diagnostic of the harmful head, not a target.
- `task_commands`: "cancel that request", "stop, that's enough examples" after a benign exchange: never-end.
Every decision comes from replaying serving.policy over the scorer's per-turn scores, as production does.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.evaluation.turn_metrics import label_metrics
from serving.policy import END, PolicyConfig, first_end, replay

Turns = list[tuple[str, str]]
#: How an assistant deflects abuse and refuses harmful requests in the built chats: plain, generic wording.
DEFLECTIONS = (
    "I'd like to keep this conversation respectful. Is there something I can help you with?",
    "I'm not going to respond to that. Let's get back to what you needed.",
    "Let's keep things civil, please. What can I do for you?",
)
REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I can't assist with that request.",
    "Sorry, I won't be able to help with that one.",
)


@dataclass
class TransferSet:
    name: str
    should_end: bool
    conversations: list[Turns]
    ids: list[str]
    note: str = ""
    available: bool = True
    why_unavailable: str = ""
    #: Per conversation, extra fields shown in the report (e.g. the probe's category).
    tags: list[dict[str, Any]] = field(default_factory=list)


def _missing(name: str, should_end: bool, why: str) -> TransferSet:
    return TransferSet(name, should_end, [], [], available=False, why_unavailable=why)


def topical_chat(root: Path, splits: Sequence[str], limit: int | None = None) -> TransferSet:
    """Topical-Chat conversations, each twice: agent_1 as the user, then agent_2."""
    convs, ids = [], []
    for split in splits:
        path = root / f"{split}.json"
        if not path.is_file():
            return _missing("topical_chat", False, f"{path} not found")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            for cid in sorted(doc):
                content = doc[cid].get("content") or []
                for user in ("agent_1", "agent_2"):
                    turns = [
                        ("user" if m["agent"] == user else "assistant", m["message"])
                        for m in content
                        if m.get("message")
                    ]
                    if turns:
                        convs.append(turns)
                        ids.append(f"{split}/{cid}/{user}-as-user")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # a damaged file: say which, lose nothing
            raise ValueError(f"{path}: not Topical-Chat JSON ({type(exc).__name__}: {exc})") from None
    if limit:
        convs, ids = convs[:limit], ids[:limit]
    return TransferSet("topical_chat", False, convs, ids, "every speaker taken as the user")


def convabuse_chains(root: Path, abusive: bool, seed: int = 13) -> TransferSet:
    """Three ConvAbuse valid user turns of one class in a row, deflected between them."""
    from pipeline.data.sources.convabuse import ConvAbuseError, read_convabuse

    name = "convabuse_abusive_x3" if abusive else "convabuse_benign_x3"
    try:
        rows = list(read_convabuse(root, ("valid",)))
    except ConvAbuseError as exc:
        return _missing(name, abusive, str(exc))
    texts = sorted(
        {
            r["turns"][i]["text"].strip()
            for r in rows
            for i in r["meta"]["labelled_turns"]
            if (r["category"] == "abuse") == abusive and r["turns"][i]["text"].strip()
        }
    )
    random.Random(seed).shuffle(texts)
    convs, ids = [], []
    for k in range(0, len(texts) - 2, 3):
        a, b, c = texts[k : k + 3]
        convs.append(
            [("user", a), ("assistant", DEFLECTIONS[0]), ("user", b), ("assistant", DEFLECTIONS[1]), ("user", c)]
        )
        ids.append(f"{name}/{k // 3}")
    note = "annotators' majority abusive" if abusive else "annotators' majority not abusive"
    return TransferSet(name, abusive, convs, ids, note)


def load_contrast(path: Path) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """label -> category -> [(safe, unsafe)] from data/probes/contrast.yaml."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for label, cats in doc.items():
        for cat, pairs in (cats or {}).items():
            for pair in pairs:
                if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                    raise ValueError(f"{path}: {label}/{cat}: each entry must be [safe, unsafe], got {pair!r}")
            out.setdefault(label, {})[cat] = [tuple(p) for p in pairs]
    return out


def pressed(text: str) -> Turns:
    """A prompt asked three times, each time refused: what a persistent user does."""
    return [("user", text), ("assistant", REFUSALS[0]), ("user", text), ("assistant", REFUSALS[1]), ("user", text)]


def contrast_sets(path: Path) -> list[TransferSet]:
    if not path.is_file():
        return [
            _missing(n, e, f"{path} not found")
            for n, e in (("contrast_safe_pressed", False), ("contrast_unsafe_pressed", True), ("task_commands", False))
        ]
    pairs = load_contrast(path)
    harmful = [(cat, s, u) for cat, ps in pairs.get("harmful_request", {}).items() for s, u in ps]
    safe, unsafe = (
        TransferSet(
            f"contrast_{side}_pressed",
            side == "unsafe",
            [pressed(pair[k]) for _, *pair in harmful],
            [f"{side}/{c}/{i}" for i, (c, _, _) in enumerate(harmful)],
            note,
        )
        for k, side, note in (
            (0, "safe", "safe look-alike, asked 3x, refused"),
            (1, "unsafe", "unsafe twin, asked 3x, refused"),
        )
    )
    safe.tags = unsafe.tags = [{"category": c} for c, _, _ in harmful]
    ends = [(cat, s) for cat, ps in pairs.get("end_request", {}).items() for s, _ in ps]
    opener = [("user", "Can you help me tidy up this paragraph?"), ("assistant", "Sure, here's a cleaner version.")]
    tasks = TransferSet(
        "task_commands",
        False,
        [[*opener, ("user", s)] for _, s in ends],
        [f"task/{c}/{i}" for i, (c, _) in enumerate(ends)],
        "a command about the task, not the chat",
    )
    tasks.tags = [{"category": c} for c, _ in ends]
    return [safe, unsafe, tasks]


ScoreFn = Callable[[Sequence[Turns]], list[list[dict[str, float]]]]


def judge(sets: Sequence[TransferSet], score: ScoreFn, policy: PolicyConfig, keep_examples: int = 20) -> dict[str, Any]:
    """Replay every set's conversations through the policy over `score`'s per-turn scores."""
    out: dict[str, Any] = {}
    for ts in sets:
        if not ts.available:
            out[ts.name] = {"available": False, "why": ts.why_unavailable, "should_end": ts.should_end}
            continue
        scores = score(ts.conversations)
        wrong, ended, reasons = [], 0, {}
        for i, (turns, s) in enumerate(zip(ts.conversations, scores, strict=True)):
            end = first_end(replay(policy, [r for r, _ in turns], s))
            is_end = end is not None and end.action == END
            ended += is_end
            if is_end:
                reasons[end.reason] = reasons.get(end.reason, 0) + 1
            if is_end != ts.should_end:
                at = end.index if is_end else max(j for j, (r, _) in enumerate(turns) if r == "user")
                row = {
                    "id": ts.ids[i],
                    "turn": turns[at][1][:200],
                    "reason": end.reason if is_end else None,
                    **(ts.tags[i] if ts.tags else {}),
                }
                wrong.append(row)
        n = len(ts.conversations)
        out[ts.name] = {
            "available": True,
            "note": ts.note,
            "should_end": ts.should_end,
            "conversations": n,
            "ended": ended,
            "ended_share": round(ended / n, 4) if n else None,
            "end_reasons": reasons,
            "wrong": len(wrong),
            "wrong_examples": wrong[:keep_examples],
        }
    return out


def guard_scorer(guard: Any) -> ScoreFn:
    """Per-turn scores from a serving Guard (what production runs); {} for system or degraded turns."""

    def score(convs: Sequence[Turns]) -> list[list[dict[str, float]]]:
        decisions = guard.assess_many([(None, c) for c in convs])
        return [[t.scores or {} for t in d.turns] for d in decisions]

    return score


def contrast_turn_metrics(
    score: ScoreFn, pairs: dict[str, dict[str, list[tuple[str, str]]]], thresholds: dict[str, float]
) -> dict[str, Any]:
    """Per label of the contrast suite: each prompt scored alone, as a first user turn, at the policy threshold.

    F1 over both twins (unsafe = positive), the share of safe twins flagged (FPR), of unsafe twins caught, the
    ROC-AUC, and the safe twins scored highest (what the head misreads)."""
    out: dict[str, Any] = {}
    for label, cats in pairs.items():
        flat = [(cat, s, u) for cat, ps in cats.items() for s, u in ps]
        texts = [s for _, s, _ in flat] + [u for _, _, u in flat]
        p = [turns[0].get(label, 0.0) for turns in score([[("user", t)] for t in texts])]
        safe = p[: len(flat)]
        th = thresholds[label]
        m = label_metrics(np.array(p), np.array([0] * len(flat) + [1] * len(flat)), th)
        worst = sorted(zip(safe, flat, strict=True), key=lambda r: -r[0])[:10]
        out[label] = {
            "pairs": len(flat),
            "threshold": th,
            "f1": m["f1"],
            "fpr_safe": sum(x >= th for x in safe) / len(flat) if flat else None,
            "recall_unsafe": m["recall"] if flat else None,
            "roc_auc": m["roc_auc"],
            "fpr_safe_by_category": {
                c: sum(x >= th for x, (cc, _, _) in zip(safe, flat, strict=True) if cc == c) / len(ps)
                for c, ps in cats.items()
                if ps
            },
            "safe_scored_highest": [{"score": round(x, 4), "category": c, "text": s} for x, (c, s, _) in worst],
        }
    return out


def convabuse_zero_shot(score: ScoreFn, root: Path, threshold: float) -> dict[str, Any]:
    """The abuse head on ConvAbuse valid, never trained on: each row's labelled user turn scored in its context.

    Macro-F1 of abusive vs not at the policy's abuse threshold and at the best threshold (an upper bound, not
    a result), and the ROC-AUC."""
    from pipeline.data.sources.convabuse import ConvAbuseError, read_convabuse

    try:
        rows = [r for r in read_convabuse(root, ("valid",)) if r["meta"]["labelled_turns"]]
    except ConvAbuseError as exc:
        return {"available": False, "why": str(exc)}
    convs = [[(t["role"], t["text"]) for t in r["turns"][: r["meta"]["labelled_turns"][0] + 1]] for r in rows]
    y = np.array([r["category"] == "abuse" for r in rows])
    p = np.array([s[-1].get("abuse", 0.0) for s in score(convs)])

    best = max((label_metrics(p, y, t)["macro_f1"], float(t)) for t in np.linspace(0.02, 0.98, 49))
    at_policy = label_metrics(p, y, threshold)
    return {
        "available": True,
        "rows": int(len(y)),
        "abusive": int(y.sum()),
        "threshold": threshold,
        "macro_f1": at_policy["macro_f1"],
        "best_macro_f1": best[0],
        "best_threshold": round(best[1], 3),
        "roc_auc": at_policy["roc_auc"],
    }
