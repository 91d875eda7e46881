"""MLflow helpers: store location, lock retry, data version, run resume, registry aliases."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from pipeline.common import tracking


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.setenv("ESCALATION_GUARD_SYSTEM_METRICS", "0")
    monkeypatch.delenv("MLFLOW_ARTIFACT_LOCATION", raising=False)
    return tmp_path


def test_uri_and_artifact_location(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri(tmp_path) == f"sqlite:///{(tmp_path / 'mlruns.db').resolve()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.team:5000")
    assert tracking.tracking_uri() == "http://mlflow.team:5000"
    assert tracking.artifact_location("http://mlflow.team:5000") is None
    loc = tracking.artifact_location(f"sqlite:///{tmp_path}/x.db")
    assert loc == (tmp_path / "mlartifacts").resolve().as_uri()
    # queued `dvc exp run` executes in a temp copy; DVC_ROOT points at the parent repo: one shared store
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{(tmp_path / 'mlruns.db').resolve()}"


def test_retry_backs_off_on_database_locked(monkeypatch):
    monkeypatch.setattr(tracking.time, "sleep", lambda s: None)
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] < 3:
            raise sqlite3.OperationalError("database is locked")
        return "ok"

    assert tracking.retry(flaky) == "ok" and calls["n"] == 3

    def broken():
        raise ValueError("something else")

    with pytest.raises(ValueError):
        tracking.retry(broken)


def test_data_version_reads_dvc_lock(tmp_path):
    lock = tmp_path / "dvc.lock"
    assert tracking.data_version(lock) == "untracked"
    lock.write_text(
        "schema: '2.0'\nstages:\n  split:\n    cmd: python -m pipeline.stages.split\n    outs:\n"
        "    - path: data/splits\n      md5: abc123.dir\n      size: 10\n"
    )
    assert tracking.data_version(lock) == "abc123.dir"


def test_run_resume_and_aliases(store):
    import mlflow

    with tracking.start_or_resume_run(run_name="train-test-1", tags={"profile": "smoke"}) as run:
        tracking.log_params({"a.b": 1, "c": "x" * 7000})
        tracking.log_metrics({"loss": 0.5, "nan": float("nan")}, step=1)
        run_id = run.info.run_id
        mlflow.log_dict({"hello": 1}, "model/info.json")
    with tracking.start_or_resume_run(run_id) as again:
        assert again.info.run_id == run_id
        tracking.log_metrics({"test.f1": 0.9})
    client = mlflow.MlflowClient()
    r = client.get_run(run_id)
    assert r.data.metrics["loss"] == 0.5 and r.data.metrics["test.f1"] == 0.9 and "nan" not in r.data.metrics
    assert len(r.data.params["c"]) == 6000
    exp = client.get_experiment(r.info.experiment_id)
    assert exp.name == tracking.EXPERIMENT and exp.artifact_location.endswith("mlartifacts")
    v1 = tracking.register_model(run_id, "model", champion=True)
    v2 = tracking.register_model(run_id, "model", champion=False)
    assert str(client.get_model_version_by_alias(tracking.MODEL_NAME, "candidate").version) == v2
    assert str(client.get_model_version_by_alias(tracking.MODEL_NAME, "champion").version) == v1


def test_concurrent_writers_do_not_fail(store):
    """Several threads creating runs and logging at once against one SQLite file."""
    import mlflow

    tracking.setup()
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            client = mlflow.MlflowClient()
            exp = tracking.retry(client.get_experiment_by_name, tracking.EXPERIMENT)
            run = tracking.retry(client.create_run, exp.experiment_id, run_name=f"w{i}")
            for step in range(5):
                tracking.retry(client.log_metric, run.info.run_id, "m", float(step), step=step)
            tracking.retry(client.set_terminated, run.info.run_id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
