"""The register stage: the tiny bundle logged as a pyfunc, registered, loaded back by alias and compared with Guard.

`mlflow.pyfunc.load_model("models:/escalation-guard-scorer@candidate").predict(...)` must give exactly what
`Guard.assess` gives (the stage wraps the very bundle production loads), in a temp SQLite store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.common import tracking
from serving.guard import Guard
from tests.conftest import REPO_ROOT
from tests.serving_fixtures import PERSISTENT_TURNS, sample_records

GATES_FAILED = {
    "passed": False,
    "enforced": False,
    "failed": ["termination_recall"],
    "gates": {"termination_recall": {"passed": False, "value": 0.4, "limit": 0.95, "op": ">=", "skipped": False}},
}


@pytest.fixture(scope="module")
def registered(bundle: str, tmp_path_factory: pytest.TempPathFactory):
    """A training run (with a system metric at step 0, as train logs them), then the stage on a copy of the
    tiny bundle that names that run."""
    import mlflow

    from pipeline.stages import register

    tmp = tmp_path_factory.mktemp("register")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlruns.db'}")
    mp.setenv("ESCALATION_GUARD_SYSTEM_METRICS", "0")
    mp.delenv("MLFLOW_ARTIFACT_LOCATION", raising=False)
    with tracking.start_or_resume_run(
        run_name="train-smoke-test", tags={"git_commit": "abc", "profile": "smoke"}
    ) as run:
        mlflow.log_metric("system/cpu_utilization_percentage", 50.0, step=0)
        mlflow.log_metric("test.macro_f1", 0.5)
        tracking.set_note_section("Quality gates", "**FAILED**: termination_recall")
    copy = tmp / "bundle"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "bundle.json").read_text())
    (copy / "bundle.json").write_text(json.dumps({**manifest, "mlflow_run_id": run.info.run_id}))
    files = {"gates.json": GATES_FAILED, "export.json": {"served_decision_agreement": 0.99}, "serving.json": {"matches_evaluate": True}}  # fmt: skip
    for name, doc in files.items():
        (tmp / name).write_text(json.dumps(doc))
    args = ["--bundle", str(copy), "--gates", str(tmp / "gates.json"), "--export-metrics", str(tmp / "export.json")]
    args += ["--serving", str(tmp / "serving.json"), "--profile", "smoke", "--config-dir", str(REPO_ROOT / "configs")]
    assert register.main(args) == 0
    yield copy, run.info.run_id
    mp.undo()


def _rows() -> list[dict]:
    rows = [
        {"id": r["id"], "turns": [{"role": t["role"], "text": t["text"]} for t in r["turns"]]} for r in sample_records()
    ]
    return [*rows, {"id": "persistent", "turns": PERSISTENT_TURNS}]


def test_pyfunc_by_alias_decides_as_guard_assess(registered) -> None:
    import mlflow

    copy, _ = registered
    scorer = mlflow.pyfunc.load_model(f"models:/{tracking.MODEL_NAME}@candidate")
    rows = _rows()
    guard = Guard.load(copy)
    expected = [{**guard.assess(r["turns"], r["id"]).to_dict(), "notes": []} for r in rows]  # POST /v1/assess
    assert scorer.predict(rows) == expected  # a list of dicts: MLflow checks it against the signature
    import pandas as pd

    assert scorer.predict(pd.DataFrame(rows[:3])) == expected[:3]
    messages = [{"id": r["id"], "messages": [{"role": t["role"], "content": t["text"]} for t in r["turns"]]} for r in rows]  # fmt: skip
    assert scorer.predict(messages) == expected  # the chat-stack shape decides the same
    assert {d["decision"] for d in expected} == {"continue", "end"}


def test_version_carries_signature_example_tags_and_aliases(registered) -> None:
    import mlflow

    copy, run_id = registered
    client = mlflow.MlflowClient()
    mv = client.get_model_version_by_alias(tracking.MODEL_NAME, "candidate")
    assert mv.run_id == run_id
    manifest = json.loads((copy / "bundle.json").read_text())
    assert mv.tags["gates_passed"] == "false" and mv.tags["gates_failed"] == "termination_recall"
    assert mv.tags["data_version"] == manifest["data_version"] and mv.tags["bundle_digest"].startswith("sha256:")
    assert mv.tags["git_commit"] == "abc" and mv.tags["serving_matches_evaluate"] == "true"
    assert mv.description.startswith("Quality gates: FAILED (termination_recall)")
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias(tracking.MODEL_NAME, "champion")  # a gate failed
    info = mlflow.models.get_model_info(f"models:/{tracking.MODEL_NAME}@candidate")
    assert {"id", "turns", "messages"} == set(info.signature.inputs.input_names())
    assert "decision" in info.signature.outputs.input_names()
    assert info.saved_input_example_info is not None
    assert client.get_registered_model(tracking.MODEL_NAME).description.startswith("escalation-guard's scorer")
    # champion moves only when asked (the stage asks when every gate passed)
    v2 = tracking.register_model(mv.source, champion=True, tags={"gates_passed": "true"})
    assert str(client.get_model_version_by_alias(tracking.MODEL_NAME, "champion").version) == v2
    assert str(client.get_model_version_by_alias(tracking.MODEL_NAME, "candidate").version) == v2


def test_run_description_and_model_metrics(registered) -> None:
    """The run's note keeps evaluate's section and adds the registration; the logged model carries the headline
    metrics, not the training machine's system metrics (MLflow copies a run's step-0 metrics into a model
    logged at step 0)."""
    import mlflow

    _, run_id = registered
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    note = run.data.tags[tracking.NOTE_TAG]
    assert note.startswith("### Quality gates\n**FAILED**") and "### Registered scorer" in note
    assert f'mlflow.pyfunc.load_model("models:/{tracking.MODEL_NAME}@candidate")' in note
    assert run.data.tags["registered_version"] == "1"
    assert run.data.metrics["headline/served_decision_agreement"] == 0.99
    mv = client.get_model_version(tracking.MODEL_NAME, "1")
    model = mlflow.get_logged_model(mv.source.removeprefix("models:/"))
    assert {m.key for m in model.metrics or []} == {"headline/served_decision_agreement"}
    history = client.get_metric_history(run_id, "headline/served_decision_agreement")
    assert len(history) == 1  # attributing it to the model did not add a point to the run's chart


def test_no_mlflow_registers_nothing(tmp_path: Path) -> None:
    from pipeline.stages import register

    assert register.main(["--no-mlflow", "--bundle", str(tmp_path / "none"), "--profile", "smoke"]) == 0


@pytest.mark.slow
def test_shipped_bundle_through_the_registry_decides_the_test_split_as_guard(tmp_path: Path, monkeypatch) -> None:
    """The issue's done-when on real outputs (after `dvc repro`): models/bundle registered into a temp store,
    loaded by alias, and every test-split conversation decided exactly as Guard.assess decides it."""
    import mlflow

    from pipeline.data.split_files import read_split
    from pipeline.stages import register

    bundle, split = REPO_ROOT / "models" / "bundle", REPO_ROOT / "data" / "splits" / "test.parquet"
    if not (bundle / "bundle.json").is_file() or not split.is_file():
        pytest.skip("needs models/bundle and data/splits/test.parquet (dvc repro)")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.setenv("MLFLOW_ARTIFACT_LOCATION", (tmp_path / "artifacts").as_uri())
    metrics = REPO_ROOT / "metrics"
    args = ["--bundle", str(bundle), "--gates", str(metrics / "gates.json"), "--export-metrics"]
    args += [str(metrics / "export.json"), "--serving", str(metrics / "serving.json")]
    assert register.main([*args, "--config-dir", str(REPO_ROOT / "configs")]) == 0
    rows = [{"id": c.id, "turns": [{"role": t.role, "text": t.text} for t in c.turns]} for c in read_split(split)]
    got = mlflow.pyfunc.load_model(f"models:/{tracking.MODEL_NAME}@candidate").predict(rows)
    guard = Guard.load(bundle)
    assert got == [{**guard.assess(r["turns"], r["id"]).to_dict(), "notes": []} for r in rows]


def test_the_readme_mlflow_example_runs(registered) -> None:
    from tests.test_readme import blocks

    (code,) = [b for b in blocks("python") if "models:/" in b]
    namespace: dict = {}
    exec(compile(code, "README.md MLflow block", "exec"), namespace)
    (answer,) = namespace["scorer"].predict([{"id": "c1", "turns": [{"role": "user", "text": "please end this chat"}]}])
    assert answer["id"] == "c1" and answer["decision"] in ("continue", "end")
