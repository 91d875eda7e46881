"""The label set shared by training, evaluation and serving.

Kept in `serving/` so the pipeline and production can never disagree on which
column of the model's output means what.
"""

from __future__ import annotations

from collections.abc import Mapping

USER_LABELS: tuple[str, ...] = ("harmful_request", "abuse", "end_request", "self_harm_risk")
ASSISTANT_LABELS: tuple[str, ...] = ("redirect",)
#: Column order of the model head. Never reorder: bundles record it and refuse a mismatch.
MODEL_LABELS: tuple[str, ...] = USER_LABELS + ASSISTANT_LABELS

ROLES: tuple[str, ...] = ("user", "assistant", "system")
SCORED_ROLES: tuple[str, ...] = ("user", "assistant")

#: Which labels a turn of each role may carry; the loss is masked to these.
LABELS_BY_ROLE: dict[str, tuple[str, ...]] = {
    "user": USER_LABELS,
    "assistant": ASSISTANT_LABELS,
    "system": (),
}

#: Conversation categories the synthetic generator writes. Other sources may use
#: their own; these are the ones metrics and gates know by name.
CATEGORIES: tuple[str, ...] = (
    "benign",
    "hard_negative",
    "one_off_harmful",
    "persistent_harmful",
    "escalating_abuse",
    "end_request",
    "self_harm",
    "self_harm_abuse",
    "topic_drift",
)
#: Categories whose conversations must never be ended, whatever the scores say.
NEVER_END_CATEGORIES: tuple[str, ...] = (
    "benign",
    "hard_negative",
    "one_off_harmful",
    "self_harm",
    "self_harm_abuse",
)


def label_mask(role: str) -> tuple[float, ...]:
    """1.0 where a label applies to `role`, in MODEL_LABELS order."""
    allowed = LABELS_BY_ROLE.get(role, ())
    return tuple(1.0 if name in allowed else 0.0 for name in MODEL_LABELS)


def role_scores(role: str, scores: Mapping[str, float]) -> dict[str, float]:
    """The scores of the labels `role` can carry, in MODEL_LABELS order.

    Why: the head outputs every label for every turn, but the loss is masked by role, so a user label on an
    assistant turn is untrained noise ("Hello! What can I do for you?" scored 0.96 abuse after an insult).
    Reporting it would mislead whoever reads a decision; the policy never reads it.
    """
    allowed = LABELS_BY_ROLE.get(role, ())
    return {name: scores[name] for name in MODEL_LABELS if name in allowed and name in scores}
