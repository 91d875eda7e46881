"""MLflow helpers: one experiment, one run per training, resumed by later stages.

The default store is embedded (`sqlite:///mlruns.db` at the repo root, artifacts in `./mlartifacts`);
`MLFLOW_TRACKING_URI` points everything at a team server instead. Importing this module sets
MLFLOW_TRACKING_URI to that default when it is unset, so that every MLflow call of the process and of its
subprocesses uses the project's store: MLflow's own default is `sqlite:///mlflow.db` in the current folder,
and one call made without the URI would create an empty `mlflow.db` beside ours. Several `dvc exp run`
processes may write to one SQLite file at once, so every MLflow call that touches the store goes through
`retry`, which backs off on "database is locked".
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import random
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

log = logging.getLogger(__name__)

EXPERIMENT = "escalation-guard"
MODEL_NAME = "escalation-guard-scorer"
DEFAULT_DB = "mlruns.db"
DEFAULT_ARTIFACTS = "mlartifacts"
#: Set on the experiment when it is created or found: MLflow 3's UI opens an experiment without this tag on
#: its GenAI traces view (empty here), with it on the training runs.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}

T = TypeVar("T")

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def repo_root() -> Path:
    """The repo root: DVC_ROOT when DVC runs the stage (queued `dvc exp run` executes in a temp copy but
    points DVC_ROOT at the parent repo, so every experiment lands in the one store), else the cwd."""
    return Path(os.environ.get("DVC_ROOT") or ".")


def tracking_uri(root: str | Path | None = None) -> str:
    """MLFLOW_TRACKING_URI if set, else the embedded SQLite store at the repo root."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(Path(root or repo_root()) / DEFAULT_DB).resolve()}"


def use_project_store() -> str:
    """Make the project's store the process's default (MLFLOW_TRACKING_URI, inherited by subprocesses such as
    MLflow's own model-loading checks) unless one is set already; returns the URI."""
    uri = tracking_uri()
    os.environ.setdefault("MLFLOW_TRACKING_URI", uri)
    return uri


use_project_store()


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: beside a local SQLite file; the server decides otherwise.

    Set explicitly because MLflow's default for the default experiment follows the current folder.
    """
    env = os.environ.get("MLFLOW_ARTIFACT_LOCATION")
    if env:
        return env
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return (db.parent / DEFAULT_ARTIFACTS).resolve().as_uri()
    return None


def _is_locked(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def retry(fn: Callable[..., T], *args: Any, attempts: int = 10, base_delay: float = 0.2, **kwargs: Any) -> T:
    """Call `fn`, retrying with jittered exponential backoff while SQLite reports a lock."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if attempt == attempts - 1 or not _is_locked(exc):
                raise
            delay = base_delay * (2**attempt) * (0.5 + random.random())
            log.warning("MLflow store busy (%s); retry %d/%d in %.1fs", exc, attempt + 1, attempts, delay)
            time.sleep(min(delay, 10.0))
    raise AssertionError("unreachable")


def setup(experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id."""
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient()

    def get_or_create() -> str:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            try:
                return client.create_experiment(
                    experiment, artifact_location=artifact_location(uri), tags=EXPERIMENT_TAGS
                )
            except Exception as exc:  # another process created it first
                exp = client.get_experiment_by_name(experiment)
                if exp is None:
                    raise exc from None
        for key, value in EXPERIMENT_TAGS.items():  # an experiment made before the tag; one a person set is kept
            if key not in exp.tags:
                client.set_experiment_tag(exp.experiment_id, key, value)
        return exp.experiment_id

    exp_id = retry(get_or_create)
    retry(mlflow.set_experiment, experiment_id=exp_id)
    return exp_id


def start_or_resume_run(
    run_id: str | None = None,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    log_system_metrics: bool | None = None,
    experiment: str = EXPERIMENT,
):
    """Start a new run (train) or resume the training run by id (evaluate, export); returns the ActiveRun.

    Use as a context manager: `with start_or_resume_run(info["mlflow_run_id"]): ...`.
    """
    import mlflow

    setup(experiment)
    if log_system_metrics is None:
        log_system_metrics = os.environ.get("ESCALATION_GUARD_SYSTEM_METRICS", "1") != "0"
    if run_id:
        return retry(mlflow.start_run, run_id=run_id, log_system_metrics=log_system_metrics)
    return retry(mlflow.start_run, run_name=run_name, tags=dict(tags or {}), log_system_metrics=log_system_metrics)


def _git(args: list[str], cwd: str | Path | None = None) -> str:
    """git's output (CalledProcessError when git fails, e.g. outside a repository)."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10)
    return proc.stdout.strip("\n")


def dvc_owned_paths(dvc_yaml: str | Path) -> set[str]:
    """The paths `dvc repro` writes (relative to dvc.yaml's folder): every stage's outs, metrics and plots,
    dvc.lock, and the .gitignore DVC keeps beside each cached output. Several are committed (metrics, plots,
    dvc.lock), so a repro on a clean clone rewrites them before `train` reads git's state."""
    p = Path(dvc_yaml)
    owned = {"dvc.lock"}
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return owned
    for stage in (doc.get("stages") or {}).values():
        stage = (stage or {}).get("do", stage) or {}  # foreach/matrix stages keep their body under `do`
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                path, opts = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
                path = posixpath.normpath(str(path))
                owned.add(path)
                if (opts or {}).get("cache", True):
                    owned.add(posixpath.join(posixpath.dirname(path), ".gitignore"))
    return owned


def source_changes(cwd: str | Path | None = None) -> list[str]:
    """Tracked files that differ from HEAD (staged or not), leaving out what DVC owns: real source changes.

    Raises OSError / subprocess.SubprocessError outside git."""
    top = Path(_git(["rev-parse", "--show-toplevel"], cwd))
    changed = _git(["diff", "--name-only", "--no-renames", "-z", "HEAD", "--"], top).split("\0")
    owned = dvc_owned_paths(top / "dvc.yaml")

    def is_owned(path: str) -> bool:
        return any(path == o or path.startswith(o.rstrip("/") + "/") for o in owned)

    return [p for p in changed if p and not is_owned(p)]


def git_commit(short: bool = False, cwd: str | Path | None = None) -> str:
    """HEAD's commit, with `-dirty` if a tracked source file changed (`source_changes`: the outputs DVC
    rewrites do not count), or "unknown" outside git."""
    try:
        sha = _git(["rev-parse", "HEAD"], cwd)
        dirty = source_changes(cwd)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if dirty:
        log.info("git tree dirty (%d changed source files, e.g. %s)", len(dirty), ", ".join(dirty[:3]))
    sha = sha[:8] if short else sha
    return f"{sha}-dirty" if dirty else sha


def data_version(lock_path: str | Path = "dvc.lock", data_path: str = "data/splits") -> str:
    """The md5 DVC recorded for the splits (what the model was trained on), or "untracked"."""
    p = Path(lock_path)
    if not p.exists():
        return "untracked"
    try:
        lock = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return "untracked"
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out.get("path") == data_path and out.get("md5"):
                return str(out["md5"])
    return "untracked"


def dir_digest(path: str | Path) -> str:
    """md5 over a folder's files (names + bytes): a data version when DVC has not locked one."""
    h = hashlib.md5()
    root = Path(path)
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def log_params(params: Mapping[str, Any]) -> None:
    """Log a flat dict of params (MLflow caps values at 6000 chars and batches at 100)."""
    import mlflow

    items = [(k, str(v)[:6000]) for k, v in params.items()]
    for start in range(0, len(items), 100):
        retry(mlflow.log_params, dict(items[start : start + 100]))


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    import mlflow

    clean = {k.replace("/", "."): float(v) for k, v in metrics.items() if v is not None and _finite(v)}
    if clean:
        retry(mlflow.log_metrics, clean, step=step)


def add_to_run(run_id: str, metrics: Mapping[str, float], artifact: str | Path, what: str) -> None:
    """Log `metrics` and the `artifact` file (under metrics/) to an existing run, e.g. the one that trained the
    bundle's model, so that a stage run after training is reviewable beside it. A store that cannot take them
    costs a warning naming `what`, not the stage: the metrics file is the record, MLflow a view of it."""
    import mlflow

    try:
        with start_or_resume_run(run_id, log_system_metrics=False):
            log_metrics(metrics)
            retry(mlflow.log_artifact, str(artifact), "metrics")
    except Exception as exc:  # noqa: BLE001
        log.warning("could not log the %s to MLflow run %s: %s", what, run_id, exc)


def _finite(v: Any) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return f == f and f not in (float("inf"), float("-inf"))


def register_model(run_id: str, artifact_path: str, *, name: str = MODEL_NAME, champion: bool = False) -> str:
    """Register the run's logged model folder as a new version: alias `candidate`, and `champion` if asked.

    Uses the registry client directly (create_model_version with the run's artifact URI) so it works
    for a plain folder of HF files, offline, without MLflow flavour packaging.
    """
    import mlflow

    client = mlflow.MlflowClient()
    run = retry(client.get_run, run_id)
    source = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"

    def ensure_registered() -> None:
        try:
            client.get_registered_model(name)
        except mlflow.exceptions.MlflowException:
            try:
                client.create_registered_model(name, description="Per-turn scorer of escalation-guard")
            except mlflow.exceptions.MlflowException as exc:
                if "already exists" not in str(exc).lower():
                    raise

    retry(ensure_registered)
    mv = retry(
        client.create_model_version, name, source, run_id=run_id, tags={"profile": run.data.tags.get("profile", "")}
    )
    retry(client.set_registered_model_alias, name, "candidate", mv.version)
    if champion:
        retry(client.set_registered_model_alias, name, "champion", mv.version)
    return str(mv.version)
