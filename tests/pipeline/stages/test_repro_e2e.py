"""The whole DVC pipeline on the smoke profile, in a fresh copy of the repository.

This is the closest test to what a user does after cloning: `dvc repro` runs every
stage offline, a second `dvc repro` does nothing, and the bundle it produced
scores a conversation file through the serving CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

STAGES = (
    "ingest",
    "prepare",
    "split",
    "train",
    "baseline",
    "evaluate",
    "export",
    "verify",
    "register",
    "probes",
    "bench",
    "card",
)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A git+DVC copy of the tracked tree, switched to the smoke profile, with `dvc repro` run once."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path_factory.mktemp("repo")
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for rel in files:
        src = REPO_ROOT / rel
        written = rel.startswith(("data/", "models/", "metrics/", "plots/")) and not rel.startswith("data/probes/")
        if not src.is_file() or written or rel == "dvc.lock":  # data/probes/ is hand-written input
            continue
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    (root / "configs" / "profile.yaml").write_text("profile: smoke\n")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DVC_NO_ANALYTICS": "1",
        "PYTHONPATH": str(root),
    }
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    _run([*git, "init", "-q"], root, env)
    _run([*git, "add", "-A"], root, env)
    _run([*git, "commit", "-qm", "snapshot"], root, env)
    _run([sys.executable, "-m", "dvc", "repro"], root, env)
    return root, env


def test_repro_builds_every_stage(smoke_repo: tuple[Path, dict[str, str]]) -> None:
    root, _ = smoke_repo
    lock = (root / "dvc.lock").read_text()
    for stage in STAGES:
        assert f"\n  {stage}:" in lock, f"stage {stage} did not run"
    bundle = json.loads((root / "models" / "bundle" / "bundle.json").read_text())
    assert set(bundle["files"]) >= {"model.onnx", "tokenizer.json"}
    prepare = json.loads((root / "metrics" / "prepare.json").read_text())
    assert prepare["read"] == prepare["kept"] + prepare["duplicates"] + prepare["rejected"]
    for name in ("eval.json", "export.json", "serving.json", "probes.json", "bench.json", "data_report.json"):
        assert (root / "metrics" / name).exists(), name
    summary = json.loads((root / "metrics" / "summary.json").read_text())  # the card stage, from the smoke run
    assert summary["gates"] in ("pass", "fail") and "`smoke` profile" in (root / "MODEL_CARD.md").read_text()
    bench = json.loads((root / "metrics" / "bench.json").read_text())
    paired = bench["paired_with_torch"]["64"]  # torch and int8 timed in alternating blocks
    assert paired["torch_eager"]["n"] == paired["onnx_int8"]["n"] == 20
    assert bench["criteria"]["int8_64tok_speedup_vs_torch"] == paired["speedup"] > 0


def test_second_repro_is_a_noop(smoke_repo: tuple[Path, dict[str, str]]) -> None:
    root, env = smoke_repo
    out = _run([sys.executable, "-m", "dvc", "repro"], root, env).stdout
    assert "Running stage" not in out, out


def test_bundle_scores_conversations_through_the_cli(smoke_repo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, env = smoke_repo
    convs = [
        {"id": "a", "turns": [{"role": "user", "text": "hi there"}, {"role": "assistant", "text": "hello!"}]},
        {"id": "b", "turns": [{"role": "user", "text": "please end this chat now"}]},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(c) for c in convs) + "\n")
    dst = tmp_path / "out.jsonl"
    _run(
        [
            sys.executable,
            "-m",
            "serving",
            "score",
            "--bundle",
            str(root / "models" / "bundle"),
            "--input",
            str(src),
            "--output",
            str(dst),
        ],
        root,
        env,
    )
    rows = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]
    for r in rows:
        assert r["decision"] in ("continue", "end") and {"end_turn", "reason", "turns"} <= set(r)
        assert all({"index", "scores", "action"} <= set(t) for t in r["turns"])


def test_clean_clone_gives_a_clean_run_and_a_loadable_scorer(smoke_repo: tuple[Path, dict[str, str]]) -> None:
    """On a fresh commit `dvc repro` writes its outputs before `train` reads git: the run is not `-dirty`; the
    registered scorer loads by alias and decides; no client call created MLflow's default `mlflow.db`."""
    root, env = smoke_repo
    code = (
        "import json, mlflow\n"
        "c = mlflow.MlflowClient()\n"
        "mv = c.get_model_version_by_alias('escalation-guard-scorer', 'candidate')\n"
        "run = c.get_run(mv.run_id)\n"
        "scorer = mlflow.pyfunc.load_model('models:/escalation-guard-scorer@candidate')\n"
        "out = scorer.predict([{'id': 'c1', 'turns': [{'role': 'user', 'text': 'hi'}]}])\n"
        "print(json.dumps({'name': run.info.run_name, 'tags': mv.tags, 'decision': out[0]['decision']}))\n"
    )
    env = {**env, "MLFLOW_REGISTRY_URI": env["MLFLOW_TRACKING_URI"]}  # this store, whatever the test process holds
    out = _run([sys.executable, "-c", code], root, env).stdout.strip().splitlines()[-1]
    got = json.loads(out)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    assert got["name"] == f"train-smoke-{sha[:8]}", got["name"]
    assert got["tags"]["git_commit"] == sha and got["tags"]["gates_passed"] == "false"
    assert got["decision"] in ("continue", "end")
    assert not (root / "mlflow.db").exists()
