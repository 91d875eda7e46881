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
#: The run description the MLflow UI shows (markdown), kept as sections by `set_note_section`.
NOTE_TAG = "mlflow.note.content"
#: Metrics a reviewer reads first: MLflow's charts group keys by the part before "/", so these get a section
#: of their own beside the hundred-odd detailed metrics (logged with dotted names, see `log_metrics`).
HEADLINE_PREFIX = "headline/"
#: The step models are logged at. `log_model` copies every metric the run holds at its `step` into the
#: logged model; at the default step 0 that takes the first sample of each system metric (CPU, memory, disk
#: and network of the training machine), which the run page then lists as the model's. Nothing is logged at
#: -1; the metrics that do describe a model are attributed to it with `attribute_metrics`.
MODEL_STEP = -1

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
    mlflow.set_tracking_uri(uri)  # the registry follows it (unless MLFLOW_REGISTRY_URI says otherwise)
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


def register_model(
    model_uri: str,
    *,
    name: str = MODEL_NAME,
    champion: bool = False,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
) -> str:
    """Register a logged model (`models:/m-...`, as `log_model` returns it) as a new version of `name`, with
    `tags` and `description`; alias `candidate`, and `champion` if asked (only a model that passed every gate).
    Returns the version."""
    import mlflow

    client = mlflow.MlflowClient()

    def ensure_registered() -> None:
        try:
            client.get_registered_model(name)
        except mlflow.exceptions.MlflowException:
            try:
                client.create_registered_model(name, description=REGISTERED_DESCRIPTION.get(name))
            except mlflow.exceptions.MlflowException as exc:
                if "already exists" not in str(exc).lower():
                    raise

    retry(ensure_registered)
    mv = retry(mlflow.register_model, model_uri, name, tags={k: str(v) for k, v in (tags or {}).items()})
    version = str(mv.version)
    if description:
        retry(client.update_model_version, name, version, description=description)
    retry(client.set_registered_model_alias, name, "candidate", version)
    if champion:
        retry(client.set_registered_model_alias, name, "champion", version)
    return version


#: What each registered model is, as the registry lists it.
REGISTERED_DESCRIPTION = {
    MODEL_NAME: (
        "escalation-guard's scorer as production runs it: the serving bundle (int8 ONNX model, fp32 re-scoring "
        "near thresholds, tokenizer, calibrated thresholds, policy) behind an MLflow pyfunc. predict() takes "
        "conversations as rows (`turns` [{role, text}] or `messages` [{role, content}]) and returns one "
        "decision per row (continue / end, end turn, reason, per-turn actions and scores). Alias `candidate`: "
        "the latest pipeline run; `champion`: the latest that passed every quality gate."
    ),
}


def log_headline(metrics: Mapping[str, float]) -> None:
    """Log `metrics` to the active run under HEADLINE_PREFIX (names given without it)."""
    import mlflow

    clean = {f"{HEADLINE_PREFIX}{k}": float(v) for k, v in metrics.items() if v is not None and _finite(v)}
    if clean:
        retry(mlflow.log_metrics, clean)


def attribute_metrics(run_id: str, model_id: str, prefix: str = HEADLINE_PREFIX) -> None:
    """Attribute the run's latest metrics under `prefix` to the logged model `model_id` (MLflow's model pages
    and the run's metric table show them as the model's); the run's history keeps one point each, as the
    store drops an exact duplicate of (key, value, step, timestamp)."""
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    run = retry(client.get_run, run_id)
    found = [
        m
        for key in run.data.metrics
        if key.startswith(prefix)
        for m in retry(client.get_metric_history, run_id, key)[-1:]
    ]
    linked = [Metric(m.key, m.value, m.timestamp, m.step, model_id=model_id, run_id=run_id) for m in found]
    if linked:
        retry(client.log_batch, run_id, metrics=linked)


def set_note_section(title: str, body: str) -> str:
    """Set one `### title` section of the active run's description (NOTE_TAG), keeping the others: evaluate
    writes the gate verdict, later stages add theirs, and a stage run again replaces its own. Returns the note."""
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("set_note_section needs an active run")
    current = retry(mlflow.MlflowClient().get_run, run.info.run_id).data.tags.get(NOTE_TAG, "")
    sections = _note_sections(current)
    sections[title] = body.strip()
    note = "\n\n".join(f"### {t}\n{b}" if t else b for t, b in sections.items()).strip() + "\n"
    retry(mlflow.set_tag, NOTE_TAG, note)
    return note


def _note_sections(note: str) -> dict[str, str]:
    """A note's `### title` sections in order (text before the first heading under "")."""
    sections: dict[str, list[str]] = {}
    title = ""
    for line in note.splitlines():
        if line.startswith("### "):
            title = line[4:].strip()
            sections[title] = []
        else:
            sections.setdefault(title, []).append(line)
    return {t: "\n".join(lines).strip() for t, lines in sections.items() if t or "\n".join(lines).strip()}
