"""escalation-guard runtime: decide `continue` or `end` after each turn of a conversation.

    from serving import Guard
    guard = Guard.load("models/bundle")

Depends only on onnxruntime, tokenizers and numpy (HTTP extras aside). `Guard` is
imported lazily so that `import serving.labels` (used by the pipeline) stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConversationState", "Guard"]


def __getattr__(name: str) -> Any:
    if name == "Guard":
        from serving.guard import Guard

        return Guard
    if name == "ConversationState":
        from serving.state import ConversationState

        return ConversationState
    raise AttributeError(f"module 'serving' has no attribute {name!r}")
