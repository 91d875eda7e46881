"""MLflow helpers: store location, lock retry, data version, run resume, experiment kind, git state, notes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pipeline.common import tracking
from tests.conftest import REPO_ROOT


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
    # the registry (register_model) is exercised with a real logged model in tests/pipeline/stages/test_register.py


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


def test_experiment_opens_on_training_runs(store):
    """MLflow 3's UI opens an experiment on the GenAI traces view unless it is tagged custom_model_development:
    set when the experiment is created, and added to one created before (a value someone set is kept)."""
    import mlflow

    exp_id = tracking.setup()
    client = mlflow.MlflowClient()
    assert client.get_experiment(exp_id).tags["mlflow.experimentKind"] == "custom_model_development"
    old = client.create_experiment("older", artifact_location=(store / "a").as_uri())
    assert "mlflow.experimentKind" not in client.get_experiment(old).tags
    tracking.setup("older")
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"
    client.set_experiment_tag(old, "mlflow.experimentKind", "genai_development")
    tracking.setup("older")
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "genai_development"


def test_note_sections_are_kept_and_replaced(store):
    import mlflow

    with tracking.start_or_resume_run(run_name="n") as run:
        tracking.set_note_section("Quality gates", "**FAILED**: termination_recall")
        tracking.set_note_section("Registered scorer", "version 1")
        note = tracking.set_note_section("Quality gates", "**PASSED**: every gate")
        tracking.log_headline({"termination_recall": 0.5, "missing": None})
    assert note == "### Quality gates\n**PASSED**: every gate\n\n### Registered scorer\nversion 1\n"
    r = mlflow.MlflowClient().get_run(run.info.run_id)
    assert r.data.tags[tracking.NOTE_TAG] == note
    assert r.data.metrics == {"headline/termination_recall": 0.5}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True
    )


DVC_YAML = """stages:
  train:
    cmd: python train.py
    deps: [train.py]
    outs:
      - models/checkpoint
      - plots/data/history.csv:
          cache: false
    metrics:
      - metrics/train.json:
          cache: false
    plots:
      - plots/eval
"""


def test_dirty_ignores_what_dvc_rewrites(tmp_path):
    """A clean clone after `dvc repro` has rewritten committed metrics, plots and dvc.lock: not dirty; a
    changed source file (staged or not) or param file is."""
    repo = tmp_path / "repo"
    for rel, text in {
        "dvc.yaml": DVC_YAML,
        "dvc.lock": "schema: '2.0'\n",
        "train.py": "print(1)\n",
        "metrics/train.json": "{}\n",
        "plots/data/history.csv": "epoch\n",
        "plots/eval/confusion.png": "png",
        "models/.gitignore": "/checkpoint\n",
    }.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    _git(repo.parent, "init", "-q", str(repo))
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "c")
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert tracking.git_commit(cwd=repo) == sha and tracking.git_commit(short=True, cwd=repo) == sha[:8]
    for rel in ("dvc.lock", "metrics/train.json", "plots/data/history.csv", "plots/eval/confusion.png"):
        (repo / rel).write_text("rewritten by dvc repro\n")
    (repo / "models/.gitignore").write_text("/checkpoint\n/other\n")
    assert tracking.source_changes(repo) == []
    assert tracking.git_commit(cwd=repo) == sha
    (repo / "train.py").write_text("print(2)\n")
    assert tracking.source_changes(repo) == ["train.py"]
    assert tracking.git_commit(short=True, cwd=repo) == f"{sha[:8]}-dirty"
    _git(repo, "add", "train.py")  # staged counts too
    assert tracking.git_commit(cwd=repo) == f"{sha}-dirty"
    assert tracking.git_commit(cwd=tmp_path) == "unknown"  # not a git repository
    owned = tracking.dvc_owned_paths(repo / "dvc.yaml")
    assert {"dvc.lock", "models/checkpoint", "models/.gitignore", "metrics/train.json", "plots/eval"} <= owned
    assert "metrics/.gitignore" not in owned  # cache: false outputs get no .gitignore from DVC


def test_project_store_is_the_default_of_every_mlflow_call(tmp_path):
    """Importing tracking makes the project's store MLflow's default, so a bare client call (or a subprocess)
    never creates MLflow's own `mlflow.db` in the current folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_ROOT")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    code = (
        "import os, pipeline.common.tracking, mlflow\n"
        "mlflow.MlflowClient().search_experiments()\n"
        "print(os.environ['MLFLOW_TRACKING_URI'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip() == f"sqlite:///{(tmp_path / 'mlruns.db').resolve()}"
    assert (tmp_path / "mlruns.db").exists() and not (tmp_path / "mlflow.db").exists()
