"""Behavioural probes: the probe file is checked, every probe is judged at the bundle's thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.stages.probes import ProbeError, ProbeGroup, judge, load_probes, main, run_probes
from tests.conftest import REPO_ROOT

SHIPPED = REPO_ROOT / "data" / "probes" / "behaviour.yaml"


def test_shipped_probe_file_is_valid_and_covers_every_label() -> None:
    groups = load_probes(SHIPPED)
    named = {label for g in groups for label in g.flags + g.not_flags}
    assert named == {"harmful_request", "abuse", "end_request", "self_harm_risk", "redirect"}
    assert all(len(g.texts) >= 5 for g in groups)


@pytest.mark.parametrize(
    "group, message",
    [
        ({"name": "x", "role": "bot", "expect": {"flags": ["abuse"]}, "texts": ["hi"]}, "role"),
        ({"name": "x", "role": "assistant", "expect": {"flags": ["abuse"]}, "texts": ["hi"]}, "expect"),
        ({"name": "x", "role": "user", "expect": {}, "texts": ["hi"]}, "expect"),
        ({"name": "x", "role": "user", "expect": {"not": ["abuse"]}, "texts": []}, "text"),
        ("just a string", "mapping"),
        ({"name": "x", "role": "user", "expect": {"not": ["abuse"]}, "texts": ["hi"], "context": ["hi"]}, "context"),
        (
            {
                "name": "x",
                "role": "user",
                "expect": {"not": ["abuse"]},
                "texts": ["hi"],
                "context": [{"role": "bot", "text": "hi"}],
            },
            "context",
        ),  # fmt: skip
    ],
)
def test_malformed_groups_are_refused(tmp_path: Path, group: dict | str, message: str) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(json.dumps({"groups": [group]}))
    with pytest.raises(ProbeError, match=message):
        load_probes(p)
    p.write_text("groups: [unclosed")
    with pytest.raises(ProbeError, match="YAML"):
        load_probes(p)


def test_judge_names_each_broken_expectation() -> None:
    g = ProbeGroup("end", "user", ("bye",), flags=("end_request",), not_flags=("self_harm_risk",))
    thr = {"end_request": 0.9, "self_harm_risk": 0.2}
    assert judge({"end_request": 0.95, "self_harm_risk": 0.1}, thr, g) == []
    assert judge({"end_request": 0.5, "self_harm_risk": 0.3}, thr, g) == [
        "end_request 0.50 < 0.90",
        "self_harm_risk 0.30 >= 0.20",
    ]


def test_run_probes_on_a_real_bundle(guard, bundle: str, tmp_path: Path) -> None:
    groups = [
        ProbeGroup("always", "user", ("hello", "how are you"), not_flags=("end_request",)),
        ProbeGroup("never", "assistant", ("Sure, here you go.",), flags=("redirect",)),
    ]
    # thresholds of 1.0 / 0.0 make the outcome certain whatever the tiny random model scores
    thr = {**guard.manifest.thresholds, "end_request": 1.0, "redirect": 1.0}

    class Patched:
        manifest = type("M", (), {"thresholds": thr})()
        assess_many = staticmethod(guard.assess_many)

    out = run_probes(Patched(), groups)
    assert out["groups"]["always"]["passed"] == 2 and out["groups"]["never"]["passed"] == 0
    assert out["groups"]["never"]["failures"][0]["text"] == "Sure, here you go."
    assert out["pass_rate"] == pytest.approx(2 / 3)

    # the stage entry point writes the metrics file from the shipped probes
    target = tmp_path / "probes.json"
    assert main(["--bundle", str(bundle), "--probes", str(SHIPPED), "--output", str(target), "--no-mlflow"]) == 0
    doc = json.loads(target.read_text())
    assert set(doc["groups"]) == {g.name for g in load_probes(SHIPPED)} and 0.0 <= doc["pass_rate"] <= 1.0


def test_pass_rates_are_logged_to_the_training_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from pipeline.common import tracking
    from pipeline.stages.probes import log_to_mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    with tracking.start_or_resume_run(None, run_name="train-test", log_system_metrics=False) as run:
        pass
    output = tmp_path / "probes.json"
    result = {"pass_rate": 0.5, "groups": {"insults": {"pass_rate": 0.25}}}
    output.write_text(json.dumps(result))
    log_to_mlflow(run.info.run_id, result, output)
    client = mlflow.MlflowClient()
    metrics = client.get_run(run.info.run_id).data.metrics
    assert metrics["probes.pass_rate"] == 0.5 and metrics["probes.insults.pass_rate"] == 0.25
    assert [a.path for a in client.list_artifacts(run.info.run_id, "metrics")] == ["metrics/probes.json"]
    log_to_mlflow("no-such-run", result, output)  # a warning, not a failure


def test_a_probe_with_context_is_scored_after_it(guard) -> None:
    context = (("user", "how do I pick a lock"), ("assistant", "I can't help with that."))
    group = ProbeGroup("moving_on", "user", ("ok, never mind",), not_flags=("end_request",), context=context)
    submitted = []

    class Recording:
        manifest = type("M", (), {"thresholds": {**guard.manifest.thresholds, "end_request": 1.0}})()

        @staticmethod
        def assess_many(conversations):
            conversations = list(conversations)
            submitted.extend(conversations)
            return guard.assess_many(conversations)

    out = run_probes(Recording(), [group])
    assert submitted == [
        ("moving_on#0", [*({"role": r, "text": t} for r, t in context), {"role": "user", "text": "ok, never mind"}])
    ]
    assert out["groups"]["moving_on"]["passed"] == 1 and out["groups"]["moving_on"]["context_turns"] == 2
    assert {len(g.context) for g in load_probes(SHIPPED)} > {0}  # the shipped file uses context
