"""serving.mlflow_pyfunc: how rows become conversations (the MLflow round trip is tests/pipeline/stages/test_register.py)."""

from __future__ import annotations

import json

import pytest

from serving import mlflow_pyfunc as mp

TURNS = [{"role": "user", "text": "hi"}, {"role": "assistant", "text": "hello"}]
PAIRS = [("user", "hi"), ("assistant", "hello")]


def _read(model_input) -> list[tuple[str | None, list[tuple[str, str]]]]:
    return [(None if r.id_generated else r.id, r.pairs) for r in mp.conversations(model_input)]


def test_rows_in_every_accepted_form() -> None:
    import numpy as np
    import pandas as pd

    want = [("a", PAIRS)]
    assert _read([{"id": "a", "turns": TURNS}]) == want
    assert _read({"id": "a", "turns": TURNS}) == want
    assert _read(pd.DataFrame([{"id": "a", "turns": TURNS}])) == want
    assert _read([{"id": "a", "turns": json.dumps(TURNS)}]) == want  # a stringified cell
    assert _read([{"id": "a", "turns": np.array(TURNS, dtype=object)}]) == want  # as MLflow hands it
    messages = [{"role": t["role"], "content": t["text"]} for t in TURNS]
    assert _read([{"id": np.int64(7), "messages": messages}]) == [("7", PAIRS)]
    assert _read(pd.DataFrame({"turns": [TURNS], "id": [float("nan")]})) == [(None, PAIRS)]
    tool = [*messages, {"role": "tool", "content": "{}"}]  # the CLI's and HTTP's rules: skipped, and noted
    (record,) = mp.conversations([{"messages": tool}])
    assert record.pairs[-1] == ("system", "{}") and record.notes == [
        "messages[2]: role 'tool' is not scored (read as a system message)"
    ]


def test_a_row_that_breaks_the_rules_is_named() -> None:
    with pytest.raises(ValueError, match="row 0: turns: missing"):
        mp.conversations([{"id": "a"}])
    with pytest.raises(ValueError, match="row 1: messages: send either turns or messages"):
        mp.conversations([{"turns": TURNS}, {"turns": TURNS, "messages": TURNS}])
    with pytest.raises(ValueError, match=r"row 0: turns\[0\].text: missing"):
        mp.conversations([{"turns": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(TypeError, match="row 0"):
        mp.conversations(["not a row"])


def test_predict_without_mlflow_context_matches_guard(bundle: str, guard) -> None:
    """Called directly (no MLflow), the wrapper scores each row on its own, as Guard.assess does."""

    class Context:
        artifacts = {mp.BUNDLE_ARTIFACT: bundle}

    model = mp.GuardModel()
    model.load_context(Context())
    rows = mp.INPUT_EXAMPLE
    expected = [{**guard.assess(r["turns"], r["id"]).to_dict(), "notes": []} for r in rows]
    assert model.predict(Context(), rows) == expected
    assert model.__getstate__()["_guard"] is None  # the onnxruntime sessions are never pickled
