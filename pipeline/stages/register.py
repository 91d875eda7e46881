"""`register` stage: the serving bundle registered in MLflow as the scorer `escalation-guard-scorer` (a pyfunc).

    python -m pipeline.stages.register [--bundle models/bundle] [--gates metrics/gates.json] [--profile smoke]

Why the bundle and not the checkpoint: production scores with the bundle (int8 ONNX, fp32 re-scoring near
thresholds, tokenizer, window, calibrated thresholds, policy), so the registered model is that bundle behind
`serving.mlflow_pyfunc.GuardModel`: `mlflow.pyfunc.load_model("models:/escalation-guard-scorer@candidate")`
then decides a conversation exactly as `Guard.assess` does. Why a stage after export and verify: the verdict
(metrics/gates.json), the parity of what is served (metrics/export.json) and the serving replay
(metrics/serving.json) are all known by then, and export stays about building the bundle.

Logs to the training run (bundle.json names it) a pyfunc model: the bundle folder as its artifact, the `serving`
package as its code, a signature and an input example, explicit pip requirements. Registers it as a new version
with alias `candidate`, `champion` too when every quality gate passed, tags for gate status, data version,
bundle digest, profile and git commit, and a description with the verdict; adds a "Registered scorer" section
to the run's description. Does nothing when `export.mlflow.enabled` is false or with --no-mlflow.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from pipeline.common.cli import run_stage
from pipeline.common.config import active_profile, section
from pipeline.export.config import ExportConfig
from serving.bundle import BundleError, BundleManifest, read_manifest

log = logging.getLogger("pipeline.stages.register")
#: The params this stage reads (dvc.yaml lists the same): (configs/<file>.yaml, section) -> its reader.
PARAMS = {("export", "export"): ExportConfig}
#: The logged model's name inside the run.
ARTIFACT_NAME = "scorer"
#: What the pyfunc needs at load time (distribution names; pinned to the versions installed here).
REQUIREMENTS = ("onnxruntime", "tokenizers", "numpy", "PyYAML", "pandas", "mlflow")
NOTE_SECTION = "Registered scorer"


def pip_requirements() -> list[str]:
    """REQUIREMENTS pinned to what is installed: given explicitly, MLflow does not infer them in a subprocess."""
    return [f"{name}=={metadata.version(name)}" for name in REQUIREMENTS]


def _read_json(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}


def version_tags(
    manifest: BundleManifest, gates: Mapping[str, Any], serving: Mapping[str, Any], run_tags: Mapping[str, str]
) -> dict[str, str]:
    """The model version's tags: what a deployment checks before it promotes a version."""
    tags = {
        "gates_passed": str(bool(gates.get("passed"))).lower() if gates else "unknown",
        "gates_failed": ",".join(gates.get("failed") or []) if gates else "unknown",
        "gates_enforced": str(bool(gates.get("enforced"))).lower() if gates else "unknown",
        "data_version": str(manifest.data_version or "unknown"),
        "bundle_digest": str(manifest.digest),
        "base_model": manifest.base_model,
        "profile": str(manifest.extra.get("profile", run_tags.get("profile", ""))),
        "git_commit": run_tags.get("git_commit", "unknown"),
    }
    if "matches_evaluate" in serving:
        tags["serving_matches_evaluate"] = str(bool(serving["matches_evaluate"])).lower()
    return tags


def description(tags: Mapping[str, str], export: Mapping[str, Any]) -> str:
    """The model version's description: the verdict first, then where the model came from."""
    if tags["gates_passed"] == "true":
        verdict = "Quality gates: PASSED."
    elif tags["gates_passed"] == "false":
        verdict = f"Quality gates: FAILED ({tags['gates_failed']}); not champion."
    else:
        verdict = "Quality gates: unknown (no metrics/gates.json)."
    served = export.get("served_decision_agreement", export.get("int8_decision_agreement"))
    parity = "" if served is None else f" Served decisions agree with fp32 on {served:.2%} of test conversations."
    return (
        f"{verdict}{parity} Bundle {tags['bundle_digest']}, data {tags['data_version']}, "
        f"profile {tags['profile']}, commit {tags['git_commit']}."
    )


#: The model's code (MLflow's models-from-code: a script that names the model, rather than a pickled object).
MODEL_SCRIPT = """\
import mlflow

from serving.mlflow_pyfunc import GuardModel

mlflow.models.set_model(GuardModel())
"""


def log_scorer(bundle_dir: Path, manifest: BundleManifest, tags: Mapping[str, str]) -> Any:
    """Log the bundle as a pyfunc model to the active run; returns MLflow's ModelInfo.

    The model is a script naming `GuardModel` with the `serving` package beside it (its source without caches),
    so loading needs neither this repository nor an unpickled object; the bundle goes in as plain files (copied
    first, so a bundle of links works). Logged at tracking.MODEL_STEP, so that MLflow does not copy the run's
    system metrics into the model."""
    import mlflow

    import serving
    from pipeline.common import tracking
    from serving import mlflow_pyfunc

    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "serving"
        shutil.copytree(Path(serving.__file__).parent, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        bundle = Path(tmp) / "bundle"  # plain files: MLflow refuses links out of the model (a DVC symlink cache)
        shutil.copytree(bundle_dir, bundle)
        script = Path(tmp) / "scorer_model.py"
        script.write_text(MODEL_SCRIPT, encoding="utf-8")
        return tracking.retry(
            mlflow.pyfunc.log_model,
            name=ARTIFACT_NAME,
            python_model=str(script),
            artifacts={mlflow_pyfunc.BUNDLE_ARTIFACT: str(bundle)},
            code_paths=[str(code)],
            signature=mlflow_pyfunc.signature(manifest.labels),
            input_example=mlflow_pyfunc.input_example(),
            pip_requirements=pip_requirements(),
            tags=dict(tags),
            step=tracking.MODEL_STEP,
        )


def note(model_name: str, version: str, tags: Mapping[str, str]) -> str:
    """The run description's section on what was registered, with the line that loads it."""
    champion = tags["gates_passed"] == "true"
    aliases = "`candidate` and `champion`" if champion else "`candidate` (not `champion`: a gate failed)"
    return (
        f"`models:/{model_name}/{version}`, alias {aliases}; bundle `{tags['bundle_digest']}`, data version "
        f"`{tags['data_version']}`.\n\n"
        f'```python\nimport mlflow\nscorer = mlflow.pyfunc.load_model("models:/{model_name}@candidate")\n'
        'scorer.predict([{"id": "c1", "turns": [{"role": "user", "text": "hi"}]}])  # one decision per row\n```'
    )


def _open_run(run_id: str | None, profile: str) -> Any:
    """The training run named by the bundle, or a new run when there is none or this store lacks it."""
    from pipeline.common import tracking

    if run_id:
        try:
            return tracking.start_or_resume_run(run_id, log_system_metrics=False)
        except Exception as exc:  # noqa: BLE001 - a run from another store must not lose the registration
            log.warning("could not resume MLflow run %s (%s); starting a new run", run_id, exc)
    return tracking.start_or_resume_run(
        None, run_name="register", tags={"stage": "register", "profile": profile}, log_system_metrics=False
    )


def register(args: argparse.Namespace, profile: str) -> dict[str, Any]:
    """Log and register the bundle (see the module docstring); returns what was registered."""
    import mlflow

    from pipeline.common import tracking

    bundle_dir = Path(args.bundle)
    manifest = read_manifest(bundle_dir)  # verified: a bundle that does not match its hashes is not registered
    gates, export, serving = _read_json(args.gates), _read_json(args.export_metrics), _read_json(args.serving)
    with _open_run(manifest.mlflow_run_id, profile) as run:
        run_id = run.info.run_id
        tags = version_tags(manifest, gates, serving, run.data.tags)
        served = export.get("served_decision_agreement", export.get("int8_decision_agreement"))
        tracking.log_headline({"served_decision_agreement": served})  # what production decides vs fp32
        info = log_scorer(bundle_dir, manifest, tags)
        tracking.attribute_metrics(run_id, info.model_id)
        champion = tags["gates_passed"] == "true"
        version = tracking.register_model(
            info.model_uri, champion=champion, tags=tags, description=description(tags, export)
        )
        tracking.retry(mlflow.set_tags, {"registered_model": tracking.MODEL_NAME, "registered_version": version})
        tracking.set_note_section(NOTE_SECTION, note(tracking.MODEL_NAME, version, tags))
    aliases = ["candidate", "champion"] if champion else ["candidate"]
    log.info("registered %s version %s (%s) from run %s", tracking.MODEL_NAME, version, ", ".join(aliases), run_id)
    return {"run_id": run_id, "model_uri": info.model_uri, "name": tracking.MODEL_NAME, "version": version,
            "aliases": aliases, "tags": tags}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline.stages.register", description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default="models/bundle", help="the bundle to register (default: %(default)s)")
    p.add_argument("--gates", default="metrics/gates.json", help="evaluate's gate verdict (default: %(default)s)")
    p.add_argument(
        "--export-metrics", default="metrics/export.json", help="export's parity metrics (default: %(default)s)"
    )
    p.add_argument("--serving", default="metrics/serving.json", help="verify's serving replay (default: %(default)s)")
    p.add_argument("--config-dir", default="configs")
    p.add_argument("--profile", default=None, help="override configs/profile.yaml")
    p.add_argument("--no-mlflow", action="store_true", help="register nothing (tests)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    profile = args.profile or active_profile(Path(args.config_dir))
    cfg = section(ExportConfig, "export", "export", profile, args.config_dir)
    if args.no_mlflow or not cfg.mlflow.enabled:
        log.info("MLflow off (--no-mlflow or export.mlflow.enabled: false): nothing registered")
        return 0
    try:
        result = register(args, profile)
    except BundleError as exc:
        print(f"register failed: {exc}", file=sys.stderr)
        return 1
    print(f"registered {result['name']} version {result['version']} ({', '.join(result['aliases'])}): "
          f"mlflow.pyfunc.load_model(\"models:/{result['name']}@candidate\")")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
